//! How a command ends: its exit code (docs/cli.md#exit-codes) and the one-line reason it
//! prints on stderr.

use std::fmt;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done: the task succeeded, the request was sent, the task was found and printed.
    Success = 0,
    /// The task failed (or was cancelled), or a verify found damage.
    TaskFailed = 1,
    /// A usage error, or a request refused by the CLI or by the request function.
    Refused = 2,
    /// Not found or an AWS error: an unknown task, table or bucket, access denied, an
    /// endpoint that does not answer.
    NotFound = 3,
    /// Ctrl-C.
    Interrupted = 130,
}

/// A command's failure: the code it exits with and what it says.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn refused(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Refused,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::NotFound,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::TaskFailed,
            message: message.into(),
        }
    }

    pub fn interrupted(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Interrupted,
            message: message.into(),
        }
    }

    /// An AWS SDK error: `what` failed, with the service's own message (one line, no
    /// request ids or debug dumps).
    pub fn aws<E, R>(
        what: impl fmt::Display,
        e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
        R: fmt::Debug + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let why = match e {
            SdkError::ServiceError(s) => {
                let err = s.err();
                match (err.code(), err.message()) {
                    (Some(code), Some(m)) => format!("{code}: {m}"),
                    (Some(code), None) => code.to_owned(),
                    (None, Some(m)) => m.to_owned(),
                    (None, None) => err.to_string(),
                }
            }
            SdkError::DispatchFailure(d) => {
                let detail = std::error::Error::source(e)
                    .map(|s| one_line(&error_chain(s)))
                    .unwrap_or_default();
                if d.is_io() || d.is_timeout() {
                    format!("the endpoint does not answer ({detail})")
                } else {
                    format!("the request could not be sent ({detail})")
                }
            }
            SdkError::TimeoutError(_) => "the endpoint did not answer in time".to_owned(),
            SdkError::ConstructionFailure(_) => {
                format!(
                    "the request could not be built: {}",
                    one_line(&error_chain(e))
                )
            }
            _ => one_line(&error_chain(e)),
        };
        CliError::not_found(format!("{what}: {why}"))
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Any other error (a bug, or a store error already worded): exit 3 with its chain on one
/// line.
impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<CliError>() {
            Ok(c) => c,
            Err(e) => CliError::not_found(one_line(&format!("{e:#}"))),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
