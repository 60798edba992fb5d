//! The request function (AWS Lambda, provided.al2023).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    solace_functions::lambda::main(solace_functions::Function::Request).await
}
