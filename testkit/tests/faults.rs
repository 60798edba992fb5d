//! The fault proxy injects each kind of fault as a real SDK client meets it: the service's own
//! error codes, connections closed before or after the request took effect, answers later than
//! the client's timeout, bodies cut short. Every fault it injects is in its log.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use solace_testkit::faults::{Fault, FaultProxy, Plan, Service};
use solace_testkit::{DEFAULT_REGION, Emulator, create_bucket, unique_name};

const READ_TIMEOUT: Duration = Duration::from_millis(1500);

/// A proxy that, when active, injects `fault` into every call; and clients through it with
/// the SDK's retries off, so each call is one attempt.
async fn proxy(
    fault: Fault,
) -> (
    FaultProxy,
    aws_sdk_dynamodb::Client,
    aws_sdk_s3::Client,
    aws_sdk_sqs::Client,
) {
    let plan = Plan {
        weights: vec![(fault, 1)],
        ..Plan::uniform(7, 1.0, READ_TIMEOUT * 2)
    };
    let proxy = FaultProxy::start(Emulator::shared().endpoint(), plan)
        .await
        .expect("the proxy starts");
    let sdk = proxy.sdk_config(DEFAULT_REGION, READ_TIMEOUT).await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    (proxy, dynamodb, s3, sqs)
}

/// One CreateTable attempt.
async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<
    aws_sdk_dynamodb::operation::create_table::CreateTableOutput,
    aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::create_table::CreateTableError>,
> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
}

async fn table_exists(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> bool {
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceNotFoundException") => false,
        Err(e) => panic!("describe {name}: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_faults_answer_with_each_services_own_codes_and_do_not_forward() {
    for (fault, status) in [
        (Fault::Throttle, None),
        (Fault::InternalError, Some(500)),
        (Fault::Unavailable, Some(503)),
    ] {
        let (proxy, dynamodb, s3, sqs) = proxy(fault).await;
        let bucket = unique_name("bkt");
        create_bucket(&s3, &bucket).await.expect("bucket");
        let table = unique_name("faults");
        proxy.set_active(true);
        let created = create_table(&dynamodb, &table).await;
        let listed = s3.list_objects_v2().bucket(&bucket).send().await;
        let queues = sqs.list_queues().send().await;
        proxy.set_active(false);

        let err = created.expect_err("CreateTable faulted");
        let err = (
            err.code().map(str::to_owned),
            err.raw_response().map(|r| r.status().as_u16()),
        );
        let s3_err = listed.expect_err("ListObjectsV2 faulted");
        let sqs_err = queues.expect_err("ListQueues faulted");
        match fault {
            Fault::Throttle => {
                let code = err.0;
                assert!(
                    matches!(
                        code.as_deref(),
                        Some("ProvisionedThroughputExceededException" | "ThrottlingException")
                    ),
                    "{code:?}"
                );
                assert_eq!(s3_err.code(), Some("SlowDown"));
                assert_eq!(
                    s3_err.raw_response().map(|r| r.status().as_u16()),
                    Some(503)
                );
                assert_eq!(sqs_err.code(), Some("ThrottlingException"));
            }
            _ => {
                assert_eq!(err.1, status, "{fault:?}");
                assert_eq!(s3_err.raw_response().map(|r| r.status().as_u16()), status);
                assert_eq!(sqs_err.raw_response().map(|r| r.status().as_u16()), status);
            }
        }
        assert!(
            !table_exists(&dynamodb, &table).await,
            "{fault:?} is not forwarded"
        );
        let services: Vec<Service> = proxy.injected().iter().map(|i| i.call.service).collect();
        assert_eq!(
            services,
            [Service::DynamoDb, Service::S3, Service::Sqs],
            "{fault:?} logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_forwarding_has_no_effect_and_one_after_it_has() {
    for (fault, takes_effect) in [
        (Fault::ResetBefore, false),
        (Fault::ResetAfter, true),
        (Fault::Delay, true),
    ] {
        let (proxy, dynamodb, _, _) = proxy(fault).await;
        let table = unique_name("faults");
        proxy.set_active(true);
        let sent = create_table(&dynamodb, &table).await;
        proxy.set_active(false);
        let err = sent.expect_err("the call fails");
        assert!(
            err.as_service_error().is_none(),
            "{fault:?} is no answer at all, not a service error: {err:?}"
        );
        if fault == Fault::Delay {
            assert!(
                match &err {
                    aws_sdk_dynamodb::error::SdkError::TimeoutError(_) => true,
                    aws_sdk_dynamodb::error::SdkError::DispatchFailure(d) => d.is_timeout(),
                    _ => false,
                },
                "a delay past the read timeout is a timeout: {err:?}"
            );
        }
        assert_eq!(
            table_exists(&dynamodb, &table).await,
            takes_effect,
            "{fault:?}"
        );
        assert_eq!(
            proxy.counts().get(&fault),
            Some(&1),
            "{fault:?} logged once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_an_error_not_a_short_object() {
    let (proxy, _, s3, _) = proxy(Fault::Truncate).await;
    let bucket = unique_name("bkt");
    create_bucket(&s3, &bucket).await.expect("bucket");
    let body = vec![b'x'; 64 << 10];
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(body.clone().into())
        .send()
        .await
        .expect("put");
    proxy.set_active(true);
    let got = match s3.get_object().bucket(&bucket).key("k").send().await {
        Ok(out) => out
            .body
            .collect()
            .await
            .map(|b| b.into_bytes().len())
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    proxy.set_active(false);
    assert!(
        got.is_err(),
        "a cut body must not read as an object: {got:?}"
    );
    assert_eq!(proxy.counts().get(&Fault::Truncate), Some(&1));
    let whole = s3
        .get_object()
        .bucket(&bucket)
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(
        whole.body.collect().await.expect("body").into_bytes().len(),
        body.len()
    );
}
