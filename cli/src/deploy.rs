//! Which deployment the operator commands talk to (docs/cli.md#deployment): the Terraform's
//! `name_prefix` (`--stack`), or explicit queue URLs and table names, or with none of them
//! the local default names `solace local` creates.

use aws_config::SdkConfig;
use solace_functions::config::names::{BACKUP_STATUS_TABLE, REQUEST_QUEUE, RESTORE_STATUS_TABLE};
use solace_functions::message::Action;

use crate::error::{CliError, CliResult};

/// What the operator named; anything left out follows from the stack prefix.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeploymentArgs {
    /// The deployment's `name_prefix`, used verbatim (`--stack solace-` → `solace-request-queue`).
    #[arg(
        long,
        global = true,
        help_heading = "Deployment",
        env = "SOLACE_STACK",
        hide_env_values = true,
        value_name = "PREFIX"
    )]
    pub stack: Option<String>,
    /// The request queue's URL (default: the queue named `<stack>request-queue`).
    #[arg(
        long,
        global = true,
        help_heading = "Deployment",
        env = "SOLACE_REQUEST_QUEUE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub request_queue_url: Option<String>,
    /// The backup status table (default: `<stack>backup-table`).
    #[arg(
        long,
        global = true,
        help_heading = "Deployment",
        env = "SOLACE_BACKUP_STATUS_TABLE",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub backup_status_table: Option<String>,
    /// The restore status table (default: `<stack>restore-table`).
    #[arg(
        long,
        global = true,
        help_heading = "Deployment",
        env = "SOLACE_RESTORE_STATUS_TABLE",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub restore_status_table: Option<String>,
}

/// A deployment's queues and status tables, and the clients that reach them.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub sdk: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    args: DeploymentArgs,
    pub backup_status_table: String,
    pub restore_status_table: String,
}

impl Deployment {
    pub fn new(sdk: SdkConfig, args: DeploymentArgs) -> Self {
        let stack = args.stack.clone().unwrap_or_default();
        let or_named = |given: &Option<String>, name: &str| {
            given.clone().unwrap_or_else(|| format!("{stack}{name}"))
        };
        Deployment {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            backup_status_table: or_named(&args.backup_status_table, BACKUP_STATUS_TABLE),
            restore_status_table: or_named(&args.restore_status_table, RESTORE_STATUS_TABLE),
            args,
            sdk,
        }
    }

    /// The status table of `action`'s tasks.
    pub fn status_table(&self, action: Action) -> &str {
        match action {
            Action::Backup | Action::Convert => &self.backup_status_table,
            Action::Restore | Action::Verify => &self.restore_status_table,
        }
    }

    /// The SDK's region: the default of every `--*-region`.
    pub fn region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.to_string())
    }

    pub async fn request_queue(&self) -> CliResult<String> {
        self.queue(&self.args.request_queue_url, REQUEST_QUEUE)
            .await
    }

    async fn queue(&self, given: &Option<String>, name: &str) -> CliResult<String> {
        if let Some(url) = given {
            return Ok(url.clone());
        }
        let name = format!("{}{name}", self.args.stack.as_deref().unwrap_or_default());
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| {
                CliError::aws(
                    format!("the deployment's queue {name} (set --stack or --request-queue-url)"),
                    &e,
                )
            })?;
        out.queue_url
            .ok_or_else(|| CliError::not_found(format!("GetQueueUrl returned no URL for {name}")))
    }
}
