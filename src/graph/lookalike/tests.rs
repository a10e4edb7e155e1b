use super::*;
use crate::graph::names::{check_folder_name, check_name};

/// Both ways: `name` is stored as `stored` and read back as `name`.
fn maps(name: &str, stored: &str, at_library_root: bool) {
    assert_eq!(
        encode_name(name, at_library_root),
        stored,
        "encode {name:?}"
    );
    assert_eq!(
        decode_name(stored, at_library_root),
        name,
        "decode {stored:?}"
    );
}

#[test]
fn rclone_rules_map_as_rclone_maps_them() {
    for (name, stored) in [
        ("report 12:30.csv", "report 12：30.csv"),
        ("what?.txt", "what？.txt"),
        (r#"a"b*c<d>e|f\g"#, "a＂b＊c＜d＞e｜f＼g"),
        ("a\tb\u{1}c\u{1F}", "a\u{2409}b\u{2401}c\u{241F}"),
        ("a\u{7F}b", "a\u{2421}b"),
        ("a\0b", "a\u{2400}b"),
        (" lead", "\u{2420}lead"),
        ("trail ", "trail\u{2420}"),
        (" both ", "\u{2420}both\u{2420}"),
        (" ", "\u{2420}"),
        ("  ", "\u{2420}\u{2420}"),
        ("a b", "a b"),
        ("ends.", "ends\u{FF0E}"),
        ("ends..", "ends.\u{FF0E}"),
        ("ends. ", "ends.\u{2420}"),
        ("ends .", "ends \u{FF0E}"),
        (".hidden", ".hidden"),
        ("~$report.docx", "\u{FF5E}$report.docx"),
        ("~tilde", "\u{FF5E}tilde"),
        ("a~b~", "a~b~"),
        (" ~", "\u{2420}~"),
        ("~ ", "\u{FF5E}\u{2420}"),
        ("~", "\u{FF5E}"),
        // Look-alikes written as such are quoted; so is the quote.
        ("a：b.txt", "a‛：b.txt"),
        ("a\u{2409}b", "a‛\u{2409}b"),
        ("a\u{2421}b", "a‛\u{2421}b"),
        ("a\u{2400}b", "a‛\u{2400}b"),
        ("‛", "‛‛"),
        ("a‛b", "a‛‛b"),
        ("\u{2420}x\u{2420}", "‛\u{2420}x‛\u{2420}"),
        ("\u{FF5E}x", "‛\u{FF5E}x"),
        ("x\u{FF0E}", "x‛\u{FF0E}"),
        ("\u{FF0E}", "‛\u{FF0E}"),
        ("\u{FF0E}\u{FF0E}", "‛\u{FF0E}‛\u{FF0E}"),
        // Only where they would be refused: in the middle these stay as they are.
        (
            "a\u{2420}b\u{FF5E}c\u{FF0E}d",
            "a\u{2420}b\u{FF5E}c\u{FF0E}d",
        ),
        ("報告：2024", "報告‛：2024"),
        ("a／b", "a／b"),
        ("Größe 報告 #1 %.txt", "Größe 報告 #1 %.txt"),
    ] {
        maps(name, stored, false);
    }
}

#[test]
fn names_rclone_has_no_rule_for_get_a_full_width_character() {
    for (name, stored) in [
        ("_vti_", "_ｖti_"),
        ("x_VTI_y.txt", "x_ＶTI_y.txt"),
        ("_vti_vti_", "_ｖti_ｖti_"),
        ("con", "coｎ"),
        ("CON.txt", "COＮ.txt"),
        ("con.", "coｎ\u{FF0E}"),
        ("Prn.log.gz", "Prｎ.log.gz"),
        ("aux", "auｘ"),
        ("NUL.x", "NUＬ.x"),
        ("com0", "com０"),
        ("COM9.txt", "COM９.txt"),
        ("lpt1", "lpt１"),
        (".lock", ".locｋ"),
        (".LOCK", ".LOCＫ"),
        ("desktop.ini", "desktop.inｉ"),
        ("Desktop.INI", "Desktop.INＩ"),
        // Written as such where they would be read as encoded: quoted.
        ("coｎ.txt", "co‛ｎ.txt"),
        ("coｎ", "co‛ｎ"),
        ("_ｖti_", "_‛ｖti_"),
        ("lpt１", "lpt‛１"),
        ("desktop.inｉ", "desktop.in‛ｉ"),
        // The Kelvin sign lower-cases to k: `.loc` + it is `.lock` to SharePoint.
        (".loc\u{212A}", ".loc‛E2‛84‛AA"),
        // C1 controls: their UTF-8 bytes, as rclone writes bytes.
        ("a\u{85}b", "a‛C2‛85b"),
        ("\u{80}\u{9F}", "‛C2‛80‛C2‛9F"),
        // Not refused, so not touched.
        ("con1.txt", "con1.txt"),
        ("com10", "com10"),
        ("icon", "icon"),
        ("vti_", "vti_"),
        ("_vti", "_vti"),
        ("x.lock", "x.lock"),
        ("desktop.ini.bak", "desktop.ini.bak"),
        ("forms", "forms"),
        ("ｖ", "ｖ"),
        ("‛E2", "‛‛E2"),
    ] {
        maps(name, stored, false);
    }
    maps("forms", "formｓ", true);
    maps("Forms", "Formｓ", true);
    maps("formｓ", "form‛ｓ", true);
    maps("forms.txt", "forms.txt", true);
    assert_eq!(encode_path("/forms/forms", true), "/formｓ/forms");
    assert_eq!(encode_path("forms/a:b", false), "forms/a：b");
    assert_eq!(decode_path("/formｓ/a：b/", true), "/forms/a:b/");
}

#[test]
fn stored_names_no_encoding_makes_decode_leniently_and_are_not_canonical() {
    for (stored, shown) in [
        // A quote that quotes nothing stands for itself (rclone reads it so too).
        ("‛a", "‛a"),
        ("a‛", "a‛"),
        ("a‛\u{2420}b", "a‛\u{2420}b"),
        ("‛\u{FF0E}x", "‛\u{FF0E}x"),
        ("‛FF", "‛FF"),
        ("‛2F", "‛2F"),
        ("‛c2‛85", "‛c2‛85"),
        // Never a path step.
        ("\u{FF0E}", "\u{FF0E}"),
    ] {
        assert_eq!(decode_name(stored, false), shown, "decode {stored:?}");
        assert_eq!(decode_reachable(stored, false), None, "{stored:?}");
    }
    // A full-width colon a SharePoint user typed reads as a colon, and maps back to itself.
    assert_eq!(
        decode_reachable("報告：2024", false).as_deref(),
        Some("報告:2024")
    );
}

/// A small deterministic generator (xorshift), so the property tests need no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

/// Characters around every rule: the refused ones, their look-alikes, the quote, the letters of
/// reserved names and patterns (ASCII, full width, Kelvin), hex digits, and ordinary ones.
const ALPHABET: &[char] = &[
    'a', 'Z', '0', '_', 'v', 'V', 't', 'I', 'c', 'o', 'n', 'N', 'l', 'k', 'K', 'p', 'r', 'x', 'u',
    'm', 's', 'f', 'd', 'e', '1', '9', 'C', '2', '8', 'E', '$', '#', '%', '.', ' ', '~', '\t',
    '\n', '\0', '\u{1}', '\u{7F}', '\u{80}', '\u{85}', '\u{9F}', '"', '*', ':', '<', '>', '?',
    '\\', '|', '‛', '\u{2400}', '\u{2409}', '\u{2420}', '\u{2421}', '\u{FF0E}', '\u{FF5E}', '：',
    '＂', '＊', '＼', '｜', 'ｖ', 'Ｖ', 'ｎ', 'Ｎ', 'ｋ', '１', 'ｓ', 'ｉ', 'ｘ', 'ｌ', '\u{212A}',
    '\u{130}', 'é', '報', '／',
];

/// Names SharePoint refuses, to be bent by [`bend`].
const TEMPLATES: &[&str] = &[
    "con",
    "CON.txt",
    "prn.a.b",
    "aux",
    "nul.",
    "com0",
    "COM9.log",
    "lpt5",
    ".lock",
    "desktop.ini",
    "forms",
    "_vti_",
    "a_vti_b",
    "_vti_vti_",
    "~$x.docx",
    " x ",
    "x.",
];

/// `template` with a few characters swapped for look-alikes or neighbours of the alphabet.
fn bend(rng: &mut Rng, template: &str) -> String {
    let mut chars: Vec<char> = template.chars().collect();
    for _ in 0..rng.below(3) {
        let at = rng.below(chars.len());
        let c = chars[at];
        chars[at] = match rng.below(4) {
            0 => char::from_u32(c as u32 + 0xFEE0)
                .filter(|_| c.is_ascii_graphic())
                .unwrap_or(c),
            1 => c.to_ascii_uppercase(),
            2 => *rng.pick(ALPHABET),
            _ => c,
        };
    }
    if rng.below(4) == 0 {
        chars.insert(0, *rng.pick(&[' ', '~', '‛', '\u{2420}', '\u{FF5E}']));
    }
    if rng.below(4) == 0 {
        chars.push(*rng.pick(&[' ', '.', '‛', '\u{2420}', '\u{FF0E}']));
    }
    chars.into_iter().collect()
}

/// The properties every name must have, at and below the library root (`.` and `..` are path
/// steps, never names).
fn round_trips(name: &str) {
    if name == "." || name == ".." {
        return;
    }
    for root in [false, true] {
        let stored = encode_name(name, root);
        assert_eq!(decode_name(&stored, root), name, "{name:?} -> {stored:?}");
        assert_eq!(check_name(&stored), Ok(()), "{name:?} -> {stored:?}");
        assert_eq!(
            check_folder_name(&stored, root),
            Ok(()),
            "{name:?} -> {stored:?} (folder, root {root})"
        );
        assert_eq!(
            decode_reachable(&stored, root).as_deref(),
            Some(name),
            "{name:?} -> {stored:?}"
        );
    }
}

#[test]
fn every_short_name_round_trips_and_is_accepted() {
    let mut name = String::new();
    for &a in ALPHABET {
        round_trips(&a.to_string());
        for &b in ALPHABET {
            name.clear();
            name.extend([a, b]);
            round_trips(&name);
        }
    }
}

#[test]
fn generated_names_round_trip_and_are_accepted() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..100_000 {
        let len = 1 + rng.below(12);
        let name: String = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
        round_trips(&name);
    }
    for _ in 0..100_000 {
        let template = *rng.pick(TEMPLATES);
        round_trips(&bend(&mut rng, template));
    }
}

#[test]
fn any_stored_name_decodes_to_a_usable_name() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..100_000 {
        let len = 1 + rng.below(10);
        let stored: String = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
        if stored == "." || stored == ".." {
            continue; // never a stored name
        }
        for root in [false, true] {
            let shown = decode_name(&stored, root);
            assert!(!shown.is_empty() && !shown.contains('/'), "{stored:?}");
            assert!(shown != "." && shown != "..", "{stored:?}");
            if decode_reachable(&stored, root).is_some() {
                assert_eq!(encode_name(&shown, root), stored);
            }
        }
    }
}
