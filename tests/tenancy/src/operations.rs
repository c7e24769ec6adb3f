//! What the gateway serves, from its own contracts rather than from a list kept by hand: HTTP
//! operations from the OpenAPI document (`gateway/openapi.json`, which the gateway's tests keep
//! equal to what it serves) and gRPC methods from the descriptor set the gateway is built with.
//! A suite compares its table with these, so a new route or rpc cannot go untested unnoticed.

use std::collections::BTreeSet;

use prost::Message;

/// Every HTTP operation of the OpenAPI document, as `"METHOD /path/{param}"`.
pub fn http_operations() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gateway/openapi.json");
    let text = std::fs::read_to_string(path).expect("gateway/openapi.json");
    let document: serde_json::Value = serde_json::from_str(&text).expect("the OpenAPI document is JSON");
    let paths = document["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flat_map(move |item| {
                item.keys()
                    .filter(|method| {
                        ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
                            .contains(&method.as_str())
                    })
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
        })
        .collect()
}

/// Every gRPC method of the gateway's descriptor set, as `"Service/Method"`.
pub fn grpc_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(studyspot_grpc_api::DESCRIPTOR_SET)
        .expect("the gateway's descriptor set decodes");
    set.file
        .iter()
        .flat_map(|file| &file.service)
        .flat_map(|service| {
            service.method.iter().map(move |method| format!("{}/{}", service.name(), method.name()))
        })
        .collect()
}

/// What a table misses of `served` and what it names that is not served (or names twice), as
/// lines for an assertion message; empty when the table covers exactly what is served.
pub fn coverage_gaps<'a>(
    what: &str,
    table: impl IntoIterator<Item = &'a str>,
    served: &BTreeSet<String>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut gaps = Vec::new();
    for entry in table {
        if !seen.insert(entry.to_owned()) {
            gaps.push(format!("{what} {entry} has two cases in the table"));
        }
        if !served.contains(entry) {
            gaps.push(format!("{what} {entry} is in the table but no longer served"));
        }
    }
    gaps.extend(
        served.iter().filter(|op| !seen.contains(*op)).map(|op| format!("{what} {op} has no tenancy case")),
    );
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_a_stale_and_a_doubled_entry_are_each_named() {
        let served: BTreeSet<String> = ["GET /a", "POST /b"].map(String::from).into();
        assert!(coverage_gaps("HTTP", ["GET /a", "POST /b"], &served).is_empty());
        let gaps = coverage_gaps("HTTP", ["GET /a", "GET /a", "DELETE /gone"], &served);
        assert_eq!(
            gaps,
            [
                "HTTP GET /a has two cases in the table",
                "HTTP DELETE /gone is in the table but no longer served",
                "HTTP POST /b has no tenancy case",
            ]
        );
    }

    #[test]
    fn the_contracts_name_the_operations_the_gateway_serves() {
        let http = http_operations();
        assert!(http.contains("GET /api/payments/{id}") && http.contains("POST /api/webhooks/{provider}"));
        let grpc = grpc_methods();
        assert!(grpc.contains("Gateway/GetPayment") && grpc.contains("Gateway/StreamEvents"));
    }
}
