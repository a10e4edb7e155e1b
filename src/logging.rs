//! The one `tracing` stack: text or JSON lines on stderr, filtered by `RUST_LOG`-style directives.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: Format, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
}

/// An error and its causes as one line (`upload failed: error sending request: connection
/// reset`), each message once: a cause whose text the line already holds is left out, so an
/// error that repeats its source's message (or Debug output of nested errors) never lengthens
/// a log line. Log errors with `error = %chain(&e)`.
pub fn chain<'a, E: std::error::Error + 'a>(error: &'a E) -> Chain<'a> {
    Chain(error)
}

/// See [`chain`].
pub struct Chain<'a>(&'a dyn std::error::Error);

impl<'a> Chain<'a> {
    fn messages(&self) -> Vec<String> {
        let mut line: Vec<String> = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(self.0);
        while let Some(e) = next {
            let message = e.to_string();
            let message = message.trim();
            if !message.is_empty() && !line.iter().any(|said| said.contains(message)) {
                line.push(message.to_string());
            }
            next = e.source();
        }
        line
    }
}

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.messages().join(": ").replace(['\n', '\r'], " "))
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    }

    fn layer(message: &str, source: Option<Layer>) -> Layer {
        Layer {
            message: message.into(),
            source: source.map(|s| Box::new(s) as _),
        }
    }

    #[test]
    fn causes_are_joined_once_on_one_line() {
        let io = std::io::Error::other("connection reset\nby peer");
        let graph = Layer {
            message: "SharePoint is busy or unavailable; try again later".into(),
            source: Some(Box::new(io)),
        };
        let top = layer(
            "SharePoint is busy or unavailable; try again later",
            Some(graph),
        );
        assert_eq!(
            chain(&top).to_string(),
            "SharePoint is busy or unavailable; try again later: connection reset by peer"
        );
        let upload = layer("upload failed", Some(layer("HTTP 503", None)));
        assert_eq!(chain(&upload).to_string(), "upload failed: HTTP 503");
    }
}
