//! The look-alike encoding behind `names = "encode"`: every character and form SharePoint refuses
//! in a name is stored as a Unicode look-alike, and turned back on the way out, so that a partner
//! sees exactly the name it wrote and a SharePoint user sees a readable one.
//!
//! Where rclone's OneDrive backend has a rule (its default encoding: `Slash, LtGt, DoubleQuote,
//! Colon, Question, Asterisk, Pipe, BackSlash, Ctl, Del, Dot, LeftSpace, LeftTilde, RightSpace,
//! RightPeriod, InvalidUtf8`), this is that rule, so that a file written through either tool
//! reads back under the same name through the other:
//!
//! | written by the partner | stored in SharePoint | rclone rule |
//! |---|---|---|
//! | `"` `*` `:` `<` `>` `?` `\` `\|` | `＂` `＊` `：` `＜` `＞` `？` `＼` `｜` (full width, U+FF02...) | `EncodeWin`, `EncodeBackSlash` |
//! | control characters U+0001-U+001F, DEL, NUL | `␁`-`␟`, `␡`, `␀` (U+2401-U+241F, U+2421, U+2400) | `EncodeCtl`, `EncodeDel`, `EncodeZero` |
//! | a leading or trailing space | `␠` (U+2420) | `EncodeLeftSpace`, `EncodeRightSpace` |
//! | a trailing `.` | `．` (U+FF0E) | `EncodeRightPeriod` |
//! | a leading `~` (so also `~$`) | `～` (U+FF5E) | `EncodeLeftTilde` |
//! | the whole names `．` and `．．` | `‛．` and `‛．‛．` | `EncodeDot` |
//! | a look-alike above written as such (`a：b`), or `‛` itself | the same, after a `‛` (U+201B): `a‛：b`, `‛‛` | rclone's quote rune |
//!
//! Where rclone has no rule (it leaves such names to fail), the same idea: the one character
//! that makes the name refused becomes its full-width form, and a full-width character there
//! written as such is quoted with `‛`:
//!
//! | written by the partner | stored in SharePoint |
//! |---|---|
//! | `_vti_` anywhere | `_ｖti_` |
//! | `CON` `PRN` `AUX` `NUL` `COM0`-`COM9` `LPT0`-`LPT9`, also with an extension | the last character before the first `.` full width: `COＮ.txt`, `lpt１` |
//! | `.lock`, `desktop.ini` | `.locｋ`, `desktop.inｉ` |
//! | `forms` at the library root | `formｓ` |
//! | C1 control characters U+0080-U+009F | their UTF-8 bytes as `‛XX`: `‛C2‛85` (rclone's notation for bytes; it reads them back as the same character) |
//!
//! The mapping is a bijection: `decode_name(encode_name(x)) == x` for every name, and an
//! encoded name always passes [`super::names::check_name`] (and `check_folder_name` at the
//! library root). Names SharePoint users create that no encoding produces (a stray `‛`) decode
//! leniently, as rclone does; [`decode_reachable`] tells them apart.

use super::names::{is_device, is_reserved_whole, segments};

/// Quotes a look-alike that stands for itself (rclone's `QuoteRune`).
const QUOTE: char = '\u{201B}';
/// Full-width forms are ASCII + this.
const FULL_WIDTH: u32 = 0xFEE0;
/// `␀`: control pictures are the control character + this.
const PICTURES: u32 = 0x2400;
const SPACE_SYMBOL: char = '\u{2420}';
const DELETE_SYMBOL: char = '\u{2421}';
const FULL_STOP: char = '\u{FF0E}';
const FULL_TILDE: char = '\u{FF5E}';
/// Lower-cases to `k`, so `.loc` + it is `.lock` to SharePoint; it has no look-alike.
const KELVIN: char = '\u{212A}';
/// ASCII characters refused anywhere in a name (`/` never reaches a name).
const WINDOWS: [char; 8] = ['"', '*', ':', '<', '>', '?', '\\', '|'];

/// The look-alike of a character refused anywhere, if `c` is one.
fn substitute(c: char) -> Option<char> {
    match c {
        '\0'..='\u{1F}' => char::from_u32(c as u32 + PICTURES),
        '\u{7F}' => Some(DELETE_SYMBOL),
        c if WINDOWS.contains(&c) => char::from_u32(c as u32 + FULL_WIDTH),
        _ => None,
    }
}

/// The character `c` stands for, if `c` is a look-alike [`substitute`] produces.
fn original(c: char) -> Option<char> {
    let back = match c {
        '\u{2400}'..='\u{241F}' => char::from_u32(c as u32 - PICTURES),
        DELETE_SYMBOL => Some('\u{7F}'),
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - FULL_WIDTH),
        _ => None,
    }?;
    (substitute(back) == Some(c)).then_some(back)
}

/// A full-width letter or digit: the look-alike of the name rules that rclone lacks.
fn is_wide_alphanumeric(c: char) -> bool {
    narrow(c) != c
}

/// The ASCII letter or digit of a full-width one; any other character unchanged.
fn narrow(c: char) -> char {
    match c {
        '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
            char::from_u32(c as u32 - FULL_WIDTH).unwrap_or(c)
        }
        _ => c,
    }
}

/// Characters without a look-alike that must still go: written as the `‛XX` of their bytes.
fn needs_bytes(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9F}') || c == KELVIN
}

/// Whether `name` with its character at `at` narrowed breaks a rule about the whole name or a
/// pattern in it, through that very character: `at` is the `v` of a `_vti_`, the last character
/// of a device stem (`CON.txt`), or the last character of `.lock`, `desktop.ini` or (at the
/// library root) `forms`. Each rule depends on characters no other rule ever changes, so the
/// encoder (looking at the partner's name) and the decoder (looking at the stored one) agree.
fn refused_through(name: &[char], at: usize, at_library_root: bool) -> bool {
    let c = narrow(name[at]);
    let vti = at >= 1
        && name[at - 1] == '_'
        && c.eq_ignore_ascii_case(&'v')
        && name.len() >= at + 4
        && name[at + 1].eq_ignore_ascii_case(&'t')
        && name[at + 2].eq_ignore_ascii_case(&'i')
        && name[at + 3] == '_';
    if vti {
        return true;
    }
    let with = |end: usize| -> String {
        name[..end]
            .iter()
            .enumerate()
            .map(|(i, &ch)| if i == at { c } else { ch })
            .collect()
    };
    let stem_end = name.iter().position(|&ch| ch == '.').unwrap_or(name.len());
    if at + 1 == stem_end && is_device(&with(stem_end)) {
        return true;
    }
    if at + 1 == name.len() {
        let whole = with(name.len());
        return is_reserved_whole(&whole) || (at_library_root && whole.to_lowercase() == "forms");
    }
    false
}

/// How the first or last character of a name is written, if it is one of the edge forms.
fn edge(c: char, first: bool) -> Option<&'static str> {
    match (c, first) {
        (' ', _) => Some("\u{2420}"),
        (SPACE_SYMBOL, _) => Some("\u{201B}\u{2420}"),
        ('~', true) => Some("\u{FF5E}"),
        (FULL_TILDE, true) => Some("\u{201B}\u{FF5E}"),
        ('.', false) => Some("\u{FF0E}"),
        (FULL_STOP, false) => Some("\u{201B}\u{FF0E}"),
        _ => None,
    }
}

/// The name SharePoint stores for `name` (one path segment, never empty). `at_library_root`:
/// the name is directly in the library's root folder (where `forms` is refused).
pub fn encode_name(name: &str, at_library_root: bool) -> String {
    match name {
        "\u{FF0E}" => return "\u{201B}\u{FF0E}".to_string(),
        "\u{FF0E}\u{FF0E}" => return "\u{201B}\u{FF0E}\u{201B}\u{FF0E}".to_string(),
        _ => {}
    }
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    let (mut start, mut end) = (0, chars.len());
    if let Some(first) = chars.first().and_then(|&c| edge(c, true)) {
        out.push_str(first);
        start = 1;
    }
    let last = chars
        .last()
        .filter(|_| end > start)
        .and_then(|&c| edge(c, false));
    if last.is_some() {
        end -= 1;
    }
    for (i, &c) in chars.iter().enumerate().take(end).skip(start) {
        if refused_through(&chars, i, at_library_root) {
            if is_wide_alphanumeric(c) {
                out.extend([QUOTE, c]);
            } else if c.is_ascii_alphanumeric() {
                out.push(char::from_u32(c as u32 + FULL_WIDTH).unwrap_or(c));
            } else {
                push_bytes(&mut out, c);
            }
        } else if c == QUOTE || original(c).is_some() {
            out.extend([QUOTE, c]);
        } else if let Some(look_alike) = substitute(c) {
            out.push(look_alike);
        } else if needs_bytes(c) {
            push_bytes(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out.push_str(last.unwrap_or_default());
    out
}

fn push_bytes(out: &mut String, c: char) {
    let mut buf = [0; 4];
    for byte in c.encode_utf8(&mut buf).bytes() {
        out.push(QUOTE);
        out.push_str(&format!("{byte:02X}"));
    }
}

/// One piece of a stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A character as stored.
    Bare(char),
    /// `‛` and the look-alike it quotes.
    Quoted(char),
    /// A character written as `‛XX` bytes.
    Bytes(char),
}

/// Splits a stored name into tokens; a `‛` that quotes nothing stands for itself.
fn tokens(stored: &[char]) -> Vec<Token> {
    let mut out = Vec::with_capacity(stored.len());
    let mut i = 0;
    while i < stored.len() {
        let c = stored[i];
        if c == QUOTE {
            if let Some((decoded, used)) = bytes_at(&stored[i..]) {
                out.push(Token::Bytes(decoded));
                i += used;
                continue;
            }
            if let Some(&next) = stored.get(i + 1)
                && (next == QUOTE
                    || original(next).is_some()
                    || is_wide_alphanumeric(next)
                    || [SPACE_SYMBOL, FULL_STOP, FULL_TILDE].contains(&next))
            {
                out.push(Token::Quoted(next));
                i += 2;
                continue;
            }
        }
        out.push(Token::Bare(c));
        i += 1;
    }
    out
}

/// The character written as `‛XX` bytes at the start of `s`, and how many characters that
/// took, if it is one [`needs_bytes`] writes so.
fn bytes_at(s: &[char]) -> Option<(char, usize)> {
    let byte = |k: usize| -> Option<u8> {
        let group = s.get(3 * k..3 * k + 3)?;
        let hex = |c: char| c.to_digit(16).filter(|_| !c.is_ascii_lowercase());
        (group[0] == QUOTE).then_some(())?;
        Some((hex(group[1])? * 16 + hex(group[2])?) as u8)
    };
    let lead = byte(0)?;
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => return None,
    };
    let bytes: Vec<u8> = (0..len).map(byte).collect::<Option<_>>()?;
    let c = std::str::from_utf8(&bytes).ok()?.chars().next()?;
    needs_bytes(c).then_some((c, 3 * len))
}

/// The name a client sees for the stored `name` (the inverse of [`encode_name`]).
pub fn decode_name(name: &str, at_library_root: bool) -> String {
    if name == "\u{201B}\u{FF0E}\u{201B}\u{FF0E}" {
        return "\u{FF0E}\u{FF0E}".to_string();
    }
    let stored: Vec<char> = name.chars().collect();
    let tokens = tokens(&stored);
    let prefix = matches!(
        tokens.first(),
        Some(Token::Bare(SPACE_SYMBOL | FULL_TILDE) | Token::Quoted(SPACE_SYMBOL | FULL_TILDE))
    );
    let suffix_at = (tokens.len() > usize::from(prefix)).then(|| tokens.len() - 1);
    // Decoded characters, with whether each is a full-width letter or digit stored bare (which
    // stands for its ASCII form where a name rule would refuse that).
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(tokens.len());
    for (k, token) in tokens.into_iter().enumerate() {
        let (first, last) = (k == 0 && prefix, Some(k) == suffix_at);
        match token {
            Token::Bare(SPACE_SYMBOL) if first || last => chars.push((' ', false)),
            Token::Bare(FULL_TILDE) if first => chars.push(('~', false)),
            Token::Bare(FULL_STOP) if last => chars.push(('.', false)),
            Token::Bare(c) => match original(c) {
                Some(back) => chars.push((back, false)),
                None => chars.push((c, is_wide_alphanumeric(c))),
            },
            Token::Quoted(c @ (SPACE_SYMBOL | FULL_TILDE)) if first => chars.push((c, false)),
            Token::Quoted(c @ (SPACE_SYMBOL | FULL_STOP)) if last => chars.push((c, false)),
            Token::Quoted(c @ (SPACE_SYMBOL | FULL_STOP | FULL_TILDE)) => {
                chars.extend([(QUOTE, false), (c, false)]);
            }
            Token::Quoted(c) | Token::Bytes(c) => chars.push((c, false)),
        }
    }
    let plain: Vec<char> = chars.iter().map(|&(c, _)| c).collect();
    let out: String = chars
        .iter()
        .enumerate()
        .map(|(i, &(c, wide))| {
            if wide && refused_through(&plain, i, at_library_root) {
                narrow(c)
            } else {
                c
            }
        })
        .collect();
    // No stored name may become a path step.
    if out == "." || out == ".." {
        return name.to_string();
    }
    out
}

/// The decoded form of a stored path (`a/b`, or one name), if encoding it gives the path back:
/// `None` for a stored name no encoding produces, which could not be reached again under its
/// decoded name.
pub fn decode_reachable(path: &str, root_is_library: bool) -> Option<String> {
    let shown = decode_path(path, root_is_library);
    (encode_path(&shown, root_is_library) == path).then_some(shown)
}

/// [`encode_name`] on every segment of `path` (`a/b`, `/a/b`; slashes kept as they are). The
/// first segment is at the library root if `root_is_library`.
pub fn encode_path(path: &str, root_is_library: bool) -> String {
    map_path(path, root_is_library, encode_name)
}

/// [`decode_name`] on every segment of `path`, as [`encode_path`].
pub fn decode_path(path: &str, root_is_library: bool) -> String {
    map_path(path, root_is_library, decode_name)
}

fn map_path(path: &str, root_is_library: bool, map: fn(&str, bool) -> String) -> String {
    let mut first = true;
    path.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return String::new();
            }
            let mapped = map(segment, first && root_is_library);
            first = false;
            mapped
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a folder path (`/`, `/Partners`) is the library's root.
pub fn is_library_root(folder: &str) -> bool {
    segments(folder).is_empty()
}

#[cfg(test)]
mod tests;
