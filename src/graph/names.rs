//! SharePoint's naming rules, checked before any request, and the encoding of drive paths into
//! Graph URLs (each segment percent-encoded on its own, RFC 3986 path rules).
//!
//! The simulator enforces the same rules with its own code; the two check each other.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Longest decoded path SharePoint accepts, counting `sites/NAME/LIBRARY/`.
pub const MAX_PATH_CHARS: usize = 400;

/// Characters SharePoint refuses anywhere in a name.
const FORBIDDEN: [char; 9] = ['"', '*', ':', '<', '>', '?', '/', '\\', '|'];

/// Names refused whole, compared case-insensitively, with or without an extension.
const DEVICE_NAMES: [&str; 4] = ["con", "prn", "aux", "nul"];

/// Which SharePoint rule a name breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("'{0}' is not allowed in SharePoint names (\" * : < > ? / \\ | are refused)")]
    ForbiddenChar(char),
    #[error("control characters are not allowed in SharePoint names")]
    Control,
    #[error("SharePoint names cannot start or end with a space")]
    EdgeSpace,
    #[error("SharePoint names cannot end with a period")]
    TrailingPeriod,
    #[error("SharePoint names cannot start with '~$'")]
    TildeDollar,
    #[error("SharePoint names cannot contain '_vti_'")]
    Vti,
    #[error("'{0}' is a reserved name in SharePoint")]
    Reserved(String),
    #[error("'forms' cannot be a folder at the root of a SharePoint library")]
    FormsAtRoot,
    #[error("the full SharePoint path would be {0} characters; the limit is 400")]
    PathTooLong(usize),
}

/// Checks one name against SharePoint's rules.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(NameError::ForbiddenChar(c));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(NameError::EdgeSpace);
    }
    if name.ends_with('.') {
        return Err(NameError::TrailingPeriod);
    }
    if name.starts_with("~$") {
        return Err(NameError::TildeDollar);
    }
    if name.to_lowercase().contains("_vti_") {
        return Err(NameError::Vti);
    }
    if is_device(name.split('.').next().unwrap_or_default()) || is_reserved_whole(name) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Whether `stem` (a name up to its first `.`) is a Windows device name (`CON`, `COM1`...),
/// which SharePoint refuses with or without an extension.
pub fn is_device(stem: &str) -> bool {
    let stem = stem.to_lowercase();
    let numbered = stem.len() == 4
        && (stem.starts_with("com") || stem.starts_with("lpt"))
        && stem.as_bytes()[3].is_ascii_digit();
    numbered || DEVICE_NAMES.contains(&stem.as_str())
}

/// Whether SharePoint refuses `name` as a whole (`.lock`, `desktop.ini`).
pub fn is_reserved_whole(name: &str) -> bool {
    let lower = name.to_lowercase();
    lower == ".lock" || lower == "desktop.ini"
}

/// Checks a folder name that is about to be created at `depth` (0 = the library root).
pub fn check_folder_name(name: &str, at_library_root: bool) -> Result<(), NameError> {
    check_name(name)?;
    if at_library_root && name.eq_ignore_ascii_case("forms") {
        return Err(NameError::FormsAtRoot);
    }
    Ok(())
}

/// Checks the length of a drive path given the library's server-relative prefix
/// (e.g. `sites/partners/Shared Documents`).
pub fn check_length(prefix: &str, path: &str) -> Result<(), NameError> {
    let chars = prefix.trim_matches('/').chars().count() + path.chars().count();
    if chars > MAX_PATH_CHARS {
        return Err(NameError::PathTooLong(chars));
    }
    Ok(())
}

/// Everything but RFC 3986 unreserved characters is encoded in a segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'!')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Percent-encodes one path segment (or one query value).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Splits a drive path (`/a/b/c.txt`, `a/b`, `/`) into its segments.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// `/a b/c#d` -> `/a%20b/c%23d`.
pub fn encode_path(path: &str) -> String {
    segments(path)
        .iter()
        .map(|s| format!("/{}", encode_segment(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_segment_on_its_own() {
        assert_eq!(encode_path("/a b/c#d%e.txt"), "/a%20b/c%23d%25e.txt");
        assert_eq!(
            encode_segment("# % & ' + , ; = @ [ ]"),
            "%23%20%25%20%26%20%27%20%2B%20%2C%20%3B%20%3D%20%40%20%5B%20%5D"
        );
        assert_eq!(
            encode_segment("Größe 報告.txt"),
            "Gr%C3%B6%C3%9Fe%20%E5%A0%B1%E5%91%8A.txt"
        );
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_path("/"), "");
    }

    #[test]
    fn refuses_what_sharepoint_refuses_and_says_why() {
        assert_eq!(check_name("a:b"), Err(NameError::ForbiddenChar(':')));
        assert_eq!(check_name(" a"), Err(NameError::EdgeSpace));
        assert_eq!(check_name("a."), Err(NameError::TrailingPeriod));
        assert_eq!(check_name("~$x.docx"), Err(NameError::TildeDollar));
        assert_eq!(check_name("a_vti_b"), Err(NameError::Vti));
        assert_eq!(
            check_name("CON.txt"),
            Err(NameError::Reserved("CON.txt".into()))
        );
        assert_eq!(check_name("lpt9"), Err(NameError::Reserved("lpt9".into())));
        assert_eq!(
            check_name("desktop.ini"),
            Err(NameError::Reserved("desktop.ini".into()))
        );
        assert_eq!(check_name("a\tb"), Err(NameError::Control));
        assert_eq!(
            check_folder_name("Forms", true),
            Err(NameError::FormsAtRoot)
        );
        for ok in [
            "a b.txt",
            "con1.txt",
            "Forms",
            "# % & ' + , ; = @ [ ].txt",
            "日本.txt",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        assert!(
            check_length("sites/p/Shared Documents", &format!("/{}", "a".repeat(380))).is_err()
        );
        assert!(check_length("sites/p/Shared Documents", "/short.txt").is_ok());
    }
}
