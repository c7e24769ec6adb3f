//! `/health` and `/ready` of a consumer process report honestly: ready while its database, the
//! broker and the schema registry answer; 503 naming the database while PostgreSQL is away (a
//! proxy the test cuts), alive throughout, and ready again when it is back.

use std::time::Duration;

use serde_json::Value;
use studyspot_schemas::{attendance, billing, notifications};
use studyspot_test_world::{World, eventually, proxy};

async fn get(url: &str) -> Option<(u16, Value)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_the_database_and_health_stays_alive() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let database = proxy::Proxy::start(world.database_host_port()).await;
    let ops = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        free.local_addr().expect("addr").to_string()
    };
    let _consumer = world.spawn_consumer_with(
        None,
        &world.database_url_via(database.addr),
        &[("STUDYSPOT_OPS_LISTEN", ops.as_str()), ("STUDYSPOT_ALERTS__HEALTH__ENABLED", "false")],
    );
    let (ready, health) = (format!("http://{ops}/ready"), format!("http://{ops}/health"));

    let body = eventually("the consumer to be ready", Duration::from_secs(60), || async {
        get(&ready).await.filter(|(status, _)| *status == 200).map(|(_, body)| body)
    })
    .await;
    for check in ["postgres", "kafka", "schema_registry"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }

    database.down();
    let body = eventually("/ready to fail without the database", Duration::from_secs(30), || async {
        get(&ready).await.filter(|(status, _)| *status == 503).map(|(_, body)| body)
    })
    .await;
    assert_eq!(body["ready"], false, "{body}");
    assert_ne!(body["checks"]["postgres"], "ok", "{body}");
    assert_eq!(body["checks"]["kafka"], "ok", "only the database is away: {body}");
    let (status, alive) = get(&health).await.expect("/health answers");
    assert_eq!((status, &alive["status"]), (200, &Value::from("alive")), "{alive}");

    database.up();
    eventually("/ready to recover with the database", Duration::from_secs(60), || async {
        get(&ready).await.filter(|(status, _)| *status == 200)
    })
    .await;
}
