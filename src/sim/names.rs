//! SharePoint's rules for item names and path lengths, as the simulator enforces them.
//!
//! This is deliberately the simulator's own copy: spgate's Graph client validates names with its
//! own code before sending, and the two check each other.

/// The longest decoded path SharePoint accepts, counting `sites/NAME/LIBRARY/`.
pub const MAX_PATH: usize = 400;

const ILLEGAL_CHARS: &[char] = &['"', '*', ':', '<', '>', '?', '/', '\\', '|'];
const RESERVED: &[&str] = &[".lock", "con", "prn", "aux", "nul", "desktop.ini"];

/// Checks one name; `Err` says which rule it breaks.
pub fn check(name: &str, is_folder: bool, at_root: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if let Some(c) = name.chars().find(|c| ILLEGAL_CHARS.contains(c)) {
        return Err(format!("the name contains the character '{c}'"));
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character".into());
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err("the name starts or ends with a space".into());
    }
    if name.ends_with('.') {
        return Err("the name ends with a period".into());
    }
    if name.starts_with("~$") {
        return Err("the name starts with '~$'".into());
    }
    let lower = name.to_lowercase();
    if lower.contains("_vti_") {
        return Err("the name contains '_vti_'".into());
    }
    let stem = lower.split('.').next().unwrap_or("");
    if RESERVED.contains(&lower.as_str()) || is_device_name(stem) || is_device_name(&lower) {
        return Err(format!("'{name}' is a reserved name"));
    }
    if RESERVED[1..5].contains(&stem) {
        return Err(format!("'{name}' is a reserved name"));
    }
    if is_folder && at_root && lower == "forms" {
        return Err("'forms' is reserved as a folder at the library root".into());
    }
    Ok(())
}

fn is_device_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 4 && (s.starts_with("com") || s.starts_with("lpt")) && bytes[3].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "a.txt",
            "Report 2024.xlsx",
            "a b#c%d.txt",
            "con1.txt",
            "forms.txt",
            "é.txt",
        ] {
            assert_eq!(check(name, false, true), Ok(()), "{name}");
        }
        assert_eq!(check("forms", true, false), Ok(()));
    }

    #[test]
    fn every_rule_refuses() {
        let bad = [
            "a\"b",
            "a*b",
            "a:b",
            "a<b",
            "a>b",
            "a?b",
            "a/b",
            "a\\b",
            "a|b",
            " a",
            "a ",
            "a.",
            "~$a.docx",
            "x_vti_y",
            "a\u{1}b",
            ".lock",
            "CON",
            "con.txt",
            "PRN",
            "AUX.doc",
            "nul",
            "COM0",
            "com9.txt",
            "LPT1",
            "desktop.ini",
            "",
        ];
        for name in bad {
            assert!(
                check(name, false, false).is_err(),
                "{name:?} should be refused"
            );
        }
        assert!(check("Forms", true, true).is_err());
    }
}
