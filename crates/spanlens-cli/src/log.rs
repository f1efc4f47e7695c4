//! The log of the commands that run the server or open a data directory: the `tracing` events
//! of spanlens-server and of this tool, on stderr.
//!
//! `SPANLENS_LOG` filters them (an `EnvFilter` directive list such as `debug` or
//! `info,spanlens_server=debug`; `info` when unset or empty) and `SPANLENS_LOG_FORMAT` picks
//! the layout: `text` (the default: one human line per event) or `json` (one JSON object per
//! line, the event's fields under `fields`).

use crate::InputError;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The variable holding the filter.
const LEVEL_VAR: &str = "SPANLENS_LOG";
/// The variable holding the format.
const FORMAT_VAR: &str = "SPANLENS_LOG_FORMAT";

/// How events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The filter a `SPANLENS_LOG` value asks for (`None`: unset).
fn filter(value: Option<&str>) -> Result<EnvFilter, InputError> {
    let directives = match value.map(str::trim) {
        None | Some("") => "info",
        Some(v) => v,
    };
    EnvFilter::builder().parse(directives).map_err(|e| {
        InputError(format!(
            "{LEVEL_VAR}={directives:?} is not a log filter ({e}); use a level such as \
             info or debug, or directives such as info,spanlens_server=debug"
        ))
    })
}

/// The format a `SPANLENS_LOG_FORMAT` value asks for (`None`: unset).
fn format(value: Option<&str>) -> Result<Format, InputError> {
    match value.map(str::trim) {
        None | Some("") => Ok(Format::Text),
        Some(v) if v.eq_ignore_ascii_case("text") => Ok(Format::Text),
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(v) => Err(InputError(format!(
            "{FORMAT_VAR}={v:?} is not a log format; use text or json"
        ))),
    }
}

/// An environment variable's value; one that is not UTF-8 is an error naming it.
fn var(name: &str) -> Result<Option<String>, InputError> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(InputError(format!("{name} is not valid UTF-8")))
        }
    }
}

/// Installs the subscriber for this process, as `SPANLENS_LOG` and `SPANLENS_LOG_FORMAT` say.
/// A value it cannot use is an [`InputError`] naming the variable.
pub fn init() -> Result<(), InputError> {
    let filter = filter(var(LEVEL_VAR)?.as_deref())?;
    let format = format(var(FORMAT_VAR)?.as_deref())?;
    // A stderr nobody reads any more (a parent that went away) must neither stop the server
    // nor make the subscriber complain about it on that same stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let installed = match format {
        Format::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .compact()
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .try_init()
        }
        Format::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| InputError(format!("cannot start the log: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_or_empty_filter_means_info() {
        for v in [None, Some(""), Some("  ")] {
            assert_eq!(filter(v).unwrap().to_string(), "info", "{v:?}");
        }
    }

    #[test]
    fn levels_and_directives_are_filters() {
        for v in [
            "debug",
            "warn",
            "info,spanlens_server=debug",
            "spanlens_server=trace",
        ] {
            assert!(filter(Some(v)).is_ok(), "{v}");
        }
    }

    #[test]
    fn a_bad_filter_names_the_variable() {
        let e = filter(Some("bogus[")).unwrap_err().0;
        assert!(e.contains("SPANLENS_LOG=\"bogus[\""), "{e}");
    }

    #[test]
    fn formats_are_text_or_json() {
        assert_eq!(format(None).unwrap(), Format::Text);
        assert_eq!(format(Some("")).unwrap(), Format::Text);
        assert_eq!(format(Some("text")).unwrap(), Format::Text);
        assert_eq!(format(Some("JSON")).unwrap(), Format::Json);
        let e = format(Some("yaml")).unwrap_err().0;
        assert!(
            e.contains("SPANLENS_LOG_FORMAT") && e.contains("yaml"),
            "{e}"
        );
    }
}
