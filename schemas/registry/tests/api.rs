//! The registry through real HTTP clients, each test on its own fresh database.

use schema_registry_converter::{
    async_impl::{
        easy_avro::{EasyAvroDecoder, EasyAvroEncoder},
        schema_registry::SrSettings,
    },
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use serde_json::{Value, json};

async fn start() -> String {
    let name = format!("reg_{}", uuid::Uuid::now_v7().simple());
    let url = studyspot_fresh_database::create(&studyspot_fresh_database::admin_url(), &name)
        .await
        .expect("a database of its own on PostgreSQL for tests");
    let pool = studyspot_schema_registry::connect(&url, 4).await.expect("connect");
    let app = studyspot_schema_registry::router(pool).await.expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request =
            request.header("content-type", "application/vnd.schemaregistry.v1+json").body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn record(fields: Value) -> String {
    json!({ "type": "record", "name": "Thing", "namespace": "test", "fields": fields }).to_string()
}

#[tokio::test]
async fn same_schema_same_id_and_ids_are_shared_across_subjects() {
    let base = start().await;
    let schema = record(json!([{ "name": "a", "type": "string" }]));
    let (s, first) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/one/versions"),
        Some(json!({ "schema": schema })),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    let (_, again) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/one/versions"),
        Some(json!({ "schema": schema })),
    )
    .await;
    assert_eq!(first["id"], again["id"]);
    let (_, other) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/two/versions"),
        Some(json!({ "schema": schema })),
    )
    .await;
    assert_eq!(first["id"], other["id"]);
    let (_, versions) = call(reqwest::Method::GET, format!("{base}/subjects/one/versions"), None).await;
    assert_eq!(versions, json!([1]));
    let (_, latest) = call(reqwest::Method::GET, format!("{base}/subjects/two/versions/latest"), None).await;
    assert_eq!(latest["version"], 1);
    assert_eq!(latest["id"], first["id"]);
    let (_, by_id) = call(reqwest::Method::GET, format!("{base}/schemas/ids/{}", first["id"]), None).await;
    assert!(by_id["schema"].as_str().expect("schema").contains("\"Thing\""));
    let (_, subjects) =
        call(reqwest::Method::GET, format!("{base}/schemas/ids/{}/subjects", first["id"]), None).await;
    assert_eq!(subjects, json!(["one", "two"]));
    let (status, missing) = call(reqwest::Method::GET, format!("{base}/schemas/ids/999"), None).await;
    assert_eq!((status, missing["error_code"].clone()), (404, json!(40403)));
}

#[tokio::test]
async fn backward_compatibility_is_enforced_and_testable() {
    let base = start().await;
    let v1 = record(json!([{ "name": "a", "type": "string" }]));
    let without_default = record(json!([{ "name": "a", "type": "string" }, { "name": "b", "type": "int" }]));
    let with_default =
        record(json!([{ "name": "a", "type": "string" }, { "name": "b", "type": "int", "default": 0 }]));
    call(reqwest::Method::POST, format!("{base}/subjects/s/versions"), Some(json!({ "schema": v1 }))).await;
    let (status, test) = call(
        reqwest::Method::POST,
        format!("{base}/compatibility/subjects/s/versions/latest?verbose=true"),
        Some(json!({ "schema": without_default })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(test["is_compatible"], false);
    assert!(!test["messages"].as_array().expect("messages").is_empty());
    let (status, refused) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/s/versions"),
        Some(json!({ "schema": without_default })),
    )
    .await;
    assert_eq!((status, refused["error_code"].clone()), (409, json!(409)));
    let (status, accepted) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/s/versions"),
        Some(json!({ "schema": with_default })),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    let (_, versions) = call(reqwest::Method::GET, format!("{base}/subjects/s/versions"), None).await;
    assert_eq!(versions, json!([1, 2]));
}

#[tokio::test]
async fn full_transitive_checks_every_version() {
    let base = start().await;
    let (status, _) = call(
        reqwest::Method::PUT,
        format!("{base}/config/ft"),
        Some(json!({ "compatibility": "FULL_TRANSITIVE" })),
    )
    .await;
    assert_eq!(status, 200);
    let v1 = record(json!([{ "name": "a", "type": "string" }]));
    let v2 = record(json!([{ "name": "a", "type": "string" }, { "name": "b", "type": "int", "default": 1 }]));
    // Dropping `a` (no default in v1) breaks reading v1 data... and v1 readers of new data.
    let v3 = record(json!([{ "name": "b", "type": "int", "default": 1 }]));
    for (schema, expected) in [(v1, 200), (v2, 200), (v3, 409)] {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/subjects/ft/versions"),
            Some(json!({ "schema": schema })),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    let (_, level) = call(reqwest::Method::GET, format!("{base}/config/ft"), None).await;
    assert_eq!(level["compatibilityLevel"], "FULL_TRANSITIVE");
    let (status, not_set) = call(reqwest::Method::GET, format!("{base}/config/other"), None).await;
    assert_eq!((status, not_set["error_code"].clone()), (404, json!(40408)));
    let (_, global) =
        call(reqwest::Method::GET, format!("{base}/config/other?defaultToGlobal=true"), None).await;
    assert_eq!(global["compatibilityLevel"], "BACKWARD");
    let (status, bad) =
        call(reqwest::Method::PUT, format!("{base}/config"), Some(json!({ "compatibility": "SIDEWAYS" })))
            .await;
    assert_eq!((status, bad["error_code"].clone()), (422, json!(42203)));
}

#[tokio::test]
async fn invalid_input_gets_confluent_error_codes() {
    let base = start().await;
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{base}/subjects/x/versions"),
        Some(json!({ "schema": "{\"type\": \"nope\"}" })),
    )
    .await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    let response = reqwest::Client::new()
        .post(format!("{base}/subjects/x/versions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error_code"], 422);
    let (status, body) = call(reqwest::Method::GET, format!("{base}/subjects/nobody/versions"), None).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
    let (status, body) =
        call(reqwest::Method::GET, format!("{base}/subjects/nobody/versions/zero"), None).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn soft_then_permanent_delete() {
    let base = start().await;
    let schema = record(json!([{ "name": "a", "type": "string" }]));
    call(reqwest::Method::POST, format!("{base}/subjects/d/versions"), Some(json!({ "schema": schema })))
        .await;
    let (status, body) =
        call(reqwest::Method::DELETE, format!("{base}/subjects/d?permanent=true"), None).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40405)));
    let (status, body) = call(reqwest::Method::DELETE, format!("{base}/subjects/d"), None).await;
    assert_eq!((status, body), (200, json!([1])));
    let (_, subjects) = call(reqwest::Method::GET, format!("{base}/subjects"), None).await;
    assert_eq!(subjects, json!([]));
    let (_, subjects) = call(reqwest::Method::GET, format!("{base}/subjects?deleted=true"), None).await;
    assert_eq!(subjects, json!(["d"]));
    let (status, body) = call(reqwest::Method::DELETE, format!("{base}/subjects/d"), None).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40404)));
    let (status, body) =
        call(reqwest::Method::DELETE, format!("{base}/subjects/d?permanent=true"), None).await;
    assert_eq!((status, body), (200, json!([1])));
    let (_, subjects) = call(reqwest::Method::GET, format!("{base}/subjects?deleted=true"), None).await;
    assert_eq!(subjects, json!([]));
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Thing {
    a: String,
}

#[tokio::test]
async fn a_confluent_client_registers_encodes_and_decodes() {
    let base = start().await;
    let settings = SrSettings::new(base.clone());
    let encoder = EasyAvroEncoder::new(settings.clone());
    let decoder = EasyAvroDecoder::new(settings);
    let schema = record(json!([{ "name": "a", "type": "string" }]));
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        "topic".into(),
        SuppliedSchema::new(Some("test.Thing".into()), SchemaType::Avro, schema),
    );
    let bytes = encoder.encode_struct(Thing { a: "hello".into() }, &strategy).await.expect("encode");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let (_, latest) =
        call(reqwest::Method::GET, format!("{base}/subjects/topic-test.Thing/versions/latest"), None).await;
    assert_eq!(latest["id"], json!(id));
    let decoded = decoder.decode(Some(&bytes)).await.expect("decode");
    let thing: Thing = apache_avro::from_value(&decoded.value).expect("value");
    assert_eq!(thing, Thing { a: "hello".into() });

    let incompatible = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        "topic".into(),
        SuppliedSchema::new(
            Some("test.Thing".into()),
            SchemaType::Avro,
            record(json!([{ "name": "a", "type": "string" }, { "name": "n", "type": "long" }])),
        ),
    );
    let refused = EasyAvroEncoder::new(SrSettings::new(base.clone()))
        .encode_struct(Thing { a: "x".into() }, &incompatible)
        .await
        .expect_err("an incompatible schema is refused");
    assert!(format!("{refused:?}").contains("409"), "{refused:?}");
}
