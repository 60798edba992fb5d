//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per call, which
//! Lambda's log pipeline turns into metrics (namespace `Solace`, dimension `Function`).
//! Outside Lambda the line goes to the debug log instead.

/// Emits `values` for `function`.
pub fn emit(function: &str, values: &[(&str, f64)]) {
    if values.is_empty() {
        return;
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let defs: Vec<_> = values
        .iter()
        .map(|(name, _)| serde_json::json!({"Name": name, "Unit": if name.contains("Bytes") { "Bytes" } else { "Count" }}))
        .collect();
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": "Solace",
                "Dimensions": [["Function"]],
                "Metrics": defs,
            }],
        },
        "Function": function,
    });
    if let Some(map) = record.as_object_mut() {
        for (name, value) in values {
            map.insert((*name).to_owned(), serde_json::json!(value));
        }
    }
    if crate::in_lambda() {
        println!("{record}");
    } else {
        tracing::debug!(target: "solace::metrics", "{record}");
    }
}
