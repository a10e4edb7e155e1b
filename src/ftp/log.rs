//! libunftp's log lines (it logs through `slog`) as `tracing` events of target `libunftp`, one
//! readable line each: where libunftp writes an error's `Debug` dump (`Error { kind:
//! LocalError, source: Some(Error { ..., message: "...", ... }) }`), the line says the dump's
//! messages instead, each once, joined as [`crate::logging::chain`] joins an error's causes.
//! The key-values libunftp adds (`username`, `source`, `trace-id`) follow as fields of the
//! message.

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Level, OwnedKVList, Record, Serializer};

/// The drain libunftp's logger writes to.
pub struct Tracing;

/// A libunftp logger writing to `tracing`.
pub fn logger() -> slog::Logger {
    slog::Logger::root(Tracing.fuse(), slog::o!())
}

impl Drain for Tracing {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = match record.level() {
            Level::Critical | Level::Error => tracing::Level::ERROR,
            Level::Warning => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        };
        // Formatting costs: only for lines the subscriber keeps.
        if !tracing::level_enabled!(level) {
            return Ok(());
        }
        let mut line = readable(&record.msg().to_string());
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        line.push_str(&fields.0);
        match level {
            tracing::Level::ERROR => tracing::error!(target: "libunftp", "{line}"),
            tracing::Level::WARN => tracing::warn!(target: "libunftp", "{line}"),
            tracing::Level::INFO => tracing::info!(target: "libunftp", "{line}"),
            tracing::Level::DEBUG => tracing::debug!(target: "libunftp", "{line}"),
            _ => tracing::trace!(target: "libunftp", "{line}"),
        }
        Ok(())
    }
}

/// Key-values as ` key=value`.
struct Fields(String);

impl Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

/// `message` with any `Debug` dump of an error (from the first `Name { `) replaced by the
/// dump's `message: "..."` texts, each once; a dump without messages is cut to its first
/// `kind`.
fn readable(message: &str) -> String {
    let Some(start) = dump_start(message) else {
        return message.replace(['\n', '\r'], " ");
    };
    let (head, dump) = message.split_at(start);
    let mut said: Vec<String> = Vec::new();
    for text in quoted_after(dump, "message: \"") {
        if !text.is_empty() && !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
    }
    if said.is_empty() {
        said.extend(word_after(dump, "kind: "));
    }
    let head = head.trim_end().trim_end_matches(':');
    format!("{head}: {}", said.join(": ")).replace(['\n', '\r'], " ")
}

/// Where the first `Name { ` (a `Debug` struct) starts in `message`.
fn dump_start(message: &str) -> Option<usize> {
    let brace = message.find(" { ")?;
    let name_start = message[..brace]
        .rfind(|c: char| !c.is_alphanumeric() && c != '_')
        .map_or(0, |i| i + 1);
    let name = &message[name_start..brace];
    name.starts_with(|c: char| c.is_ascii_uppercase())
        .then_some(name_start)
}

/// The Rust string literals after each `prefix` in `dump`, unescaped (`\"` and `\\`).
fn quoted_after(dump: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = dump;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        let mut text = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        text.push(match escaped {
                            'n' => ' ',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => text.push(c),
            }
        }
        out.push(text);
        rest = &rest[end..];
    }
    out
}

/// The identifier after the first `prefix` in `dump`.
fn word_after(dump: &str, prefix: &str) -> Option<String> {
    let at = dump.find(prefix)? + prefix.len();
    let word: String = dump[at..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn debug_dumps_become_their_messages() {
        let line = r#"Failed to retrieve directory list for path "/" (LIST command) from storage backend after 0ms: Error { kind: LocalError, source: Some(Error { kind: Disabled, message: "SharePoint connection sp is unavailable", source: Some(Error { kind: Disabled, message: "SharePoint connection 'sp' is disabled: the \"secret\" expired", code: None }) }) }"#;
        assert_eq!(
            readable(line),
            r#"Failed to retrieve directory list for path "/" (LIST command) from storage backend after 0ms: SharePoint connection sp is unavailable: SharePoint connection 'sp' is disabled: the "secret" expired"#
        );
        let io = "Could not shutdown output stream after RETR: Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" }";
        assert_eq!(
            readable(io),
            "Could not shutdown output stream after RETR: Connection reset by peer"
        );
        assert_eq!(
            readable("Error during STOR transfer after 2s: Custom { kind: Other }"),
            "Error during STOR transfer after 2s: Other"
        );
        assert_eq!(
            readable("Data channel connection timed out"),
            "Data channel connection timed out"
        );
        assert_eq!(
            readable("a list of { braces } is kept"),
            "a list of { braces } is kept"
        );
    }
}
