//! The queues the handlers send to, behind [`Queues`]: [`SqsQueues`] is the real one, and
//! `crate::mem` (feature `mem`) holds an in-memory one for unit tests. Which queue a message
//! goes to is decided in one place, [`crate::config::Config::work_queue`].

use std::future::Future;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::error::QueueError;

/// SQS's limit of entries per SendMessageBatch call.
pub const MAX_BATCH: usize = 10;

/// Sending messages. `queue` is a queue URL.
pub trait Queues: Send + Sync + 'static {
    fn send(
        &self,
        queue: &str,
        body: String,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sends up to [`MAX_BATCH`] bodies in one call; returns the positions of the bodies
    /// that were not sent (the caller retries those).
    fn send_batch(
        &self,
        queue: &str,
        bodies: Vec<String>,
    ) -> impl Future<Output = Result<Vec<usize>, QueueError>> + Send;
}

/// SQS.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
}

impl SqsQueues {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsQueues { client }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }
}

fn queue_error<E, R>(queue: &str, e: &aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sqs::error::SdkError;
    QueueError {
        queue: queue.to_owned(),
        message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        // A service error other than throttling (no such queue, access denied, a body too
        // large) stays; a transport failure may pass.
        retryable: match e {
            SdkError::ServiceError(se) => {
                let text = format!("{:?}", se.err());
                text.contains("Throttl")
                    || text.contains("RequestThrottled")
                    || text.contains("InternalError")
            }
            _ => true,
        },
    }
}

impl Queues for SqsQueues {
    async fn send(&self, queue: &str, body: String) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| queue_error(queue, &e))
    }

    async fn send_batch(&self, queue: &str, bodies: Vec<String>) -> Result<Vec<usize>, QueueError> {
        let count = bodies.len();
        let entries = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(body)
                    .build()
                    .map_err(|e| QueueError {
                        queue: queue.to_owned(),
                        message: e.to_string(),
                        retryable: false,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error(queue, &e))?;
        Ok((0..count)
            .filter(|i| {
                let id = format!("m{i}");
                out.failed().iter().any(|f| f.id() == id)
            })
            .collect())
    }
}
