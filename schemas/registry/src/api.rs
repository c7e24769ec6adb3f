use axum::{
    Json, Router,
    extract::{FromRequest, Path, Query, Request, State, rejection::JsonRejection},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    RegistryError,
    compatibility::{self, parse_level},
    store::{self, VersionRow},
};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/mode", get(|| async { reply(json!({ "mode": "READWRITE" })) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(list_versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(get_version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(get_version_schema))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/config", get(global_config).put(set_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config).delete(delete_subject_config))
        .route("/compatibility/subjects/{subject}/versions", post(test_against_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(test_against_version))
        .with_state(pool)
}

fn reply(body: Value) -> Response {
    ([("content-type", CONTENT_TYPE)], Json(body)).into_response()
}

/// JSON bodies: Confluent clients send several content types, and a bad body is a 422 with an
/// error code, not axum's plain-text rejection.
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        parts.headers.insert("content-type", axum::http::HeaderValue::from_static("application/json"));
        let req = Request::from_parts(parts, body);
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(e @ JsonRejection::JsonDataError(_)) | Err(e @ JsonRejection::JsonSyntaxError(_)) => {
                Err(RegistryError::Unprocessable(e.body_text()))
            }
            Err(e) => Err(RegistryError::Unprocessable(e.body_text())),
        }
    }
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

impl SchemaBody {
    fn parse(&self) -> Result<(apache_avro::Schema, String), RegistryError> {
        if let Some(kind) = &self.schema_type
            && !kind.eq_ignore_ascii_case("AVRO")
        {
            return Err(RegistryError::InvalidSchema(format!(
                "schemaType {kind} is not supported; only AVRO is"
            )));
        }
        if !self.references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported by this registry".into(),
            ));
        }
        compatibility::normalize(&self.schema)
    }
}

#[derive(Deserialize, Default)]
struct Flags {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    verbose: bool,
    #[serde(default, rename = "defaultToGlobal")]
    default_to_global: bool,
}

fn version_json(row: &VersionRow) -> Value {
    json!({ "subject": row.subject, "version": row.version, "id": row.schema_id, "schema": row.schema_text })
}

async fn list_subjects(
    State(pool): State<PgPool>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    Ok(reply(json!(store::subjects(&pool, flags.deleted).await?)))
}

async fn register(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Body(body): Body<SchemaBody>,
) -> Result<Response, RegistryError> {
    let (schema, normal) = body.parse()?;
    let mut tx = pool.begin().await?;
    store::lock_subject(&mut tx, &subject).await?;
    let live = store::versions(&mut tx, &subject, false).await?;
    if let Some(existing) = live.iter().find(|v| v.schema_text == normal) {
        return Ok(reply(json!({ "id": existing.schema_id })));
    }
    let level = store::effective_level(&mut tx, &subject).await?;
    let earlier = parse_all(&live)?;
    let problems = compatibility::check(&level, &schema, &earlier);
    if !problems.is_empty() {
        return Err(RegistryError::Incompatible { subject, details: problems });
    }
    let id = store::schema_id(&mut tx, &normal).await?;
    let version = store::add_version(&mut tx, &subject, id).await?;
    tx.commit().await?;
    metrics::counter!("studyspot_registry_versions_registered_total").increment(1);
    tracing::info!(%subject, version, id, "schema registered");
    Ok(reply(json!({ "id": id })))
}

fn parse_all(rows: &[VersionRow]) -> Result<Vec<apache_avro::Schema>, RegistryError> {
    rows.iter()
        .map(|r| {
            apache_avro::Schema::parse_str(&r.schema_text)
                .map_err(|e| RegistryError::InvalidSchema(e.to_string()))
        })
        .collect()
}

async fn lookup(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    Body(body): Body<SchemaBody>,
) -> Result<Response, RegistryError> {
    let (_, normal) = body.parse()?;
    let mut db = pool.acquire().await?;
    let rows = store::versions(&mut db, &subject, flags.deleted).await?;
    if rows.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    let found = rows.iter().rev().find(|r| r.schema_text == normal).ok_or(RegistryError::SchemaNotFound)?;
    Ok(reply(version_json(found)))
}

async fn list_versions(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    let mut db = pool.acquire().await?;
    let rows = store::versions(&mut db, &subject, flags.deleted).await?;
    if rows.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    Ok(reply(json!(rows.iter().map(|r| r.version).collect::<Vec<_>>())))
}

/// Resolves `latest`, `-1` or a number to a version row of the subject.
async fn find_version(
    pool: &PgPool,
    subject: &str,
    version: &str,
    deleted: bool,
) -> Result<VersionRow, RegistryError> {
    let mut db = pool.acquire().await?;
    let rows = store::versions(&mut db, subject, true).await?;
    if rows.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject.to_owned()));
    }
    let visible = |r: &&VersionRow| deleted || !r.deleted;
    let found = match version {
        "latest" | "-1" => rows.iter().rev().find(visible),
        number => {
            let n: i32 = number
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| RegistryError::InvalidVersion(number.into()))?;
            rows.iter().find(|r| r.version == n).filter(visible)
        }
    };
    found.cloned().ok_or_else(|| RegistryError::VersionNotFound(version.to_owned()))
}

async fn get_version(
    State(pool): State<PgPool>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    Ok(reply(version_json(&find_version(&pool, &subject, &version, flags.deleted).await?)))
}

async fn get_version_schema(
    State(pool): State<PgPool>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let row = find_version(&pool, &subject, &version, false).await?;
    Ok(([("content-type", CONTENT_TYPE)], row.schema_text).into_response())
}

async fn delete_subject(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    let mut tx = pool.begin().await?;
    store::lock_subject(&mut tx, &subject).await?;
    let (exists, live) = store::subject_exists(&mut tx, &subject).await?;
    if !exists {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    let versions: Vec<i32> = if flags.permanent {
        if live {
            return Err(RegistryError::SubjectNotSoftDeleted(subject));
        }
        sqlx::query_scalar("DELETE FROM versions WHERE subject = $1 RETURNING version")
            .bind(&subject)
            .fetch_all(&mut *tx)
            .await?
    } else {
        if !live {
            return Err(RegistryError::SubjectSoftDeleted(subject));
        }
        sqlx::query_scalar(
            "UPDATE versions SET deleted = true WHERE subject = $1 AND NOT deleted RETURNING version",
        )
        .bind(&subject)
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    let mut versions = versions;
    versions.sort_unstable();
    Ok(reply(json!(versions)))
}

async fn delete_version(
    State(pool): State<PgPool>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    let row = find_version(&pool, &subject, &version, flags.permanent).await?;
    if flags.permanent {
        if !row.deleted {
            return Err(RegistryError::VersionNotSoftDeleted(row.version));
        }
        sqlx::query("DELETE FROM versions WHERE subject = $1 AND version = $2")
            .bind(&subject)
            .bind(row.version)
            .execute(&pool)
            .await?;
    } else {
        sqlx::query("UPDATE versions SET deleted = true WHERE subject = $1 AND version = $2")
            .bind(&subject)
            .bind(row.version)
            .execute(&pool)
            .await?;
    }
    Ok(reply(json!(row.version)))
}

async fn schema_by_id(State(pool): State<PgPool>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    Ok(reply(json!({ "schema": store::schema_by_id(&pool, id).await? })))
}

async fn raw_schema_by_id(
    State(pool): State<PgPool>,
    Path(id): Path<i32>,
) -> Result<Response, RegistryError> {
    Ok(([("content-type", CONTENT_TYPE)], store::schema_by_id(&pool, id).await?).into_response())
}

async fn versions_of_id(State(pool): State<PgPool>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    store::schema_by_id(&pool, id).await?;
    let usages = store::usages_of(&pool, id).await?;
    Ok(reply(json!(usages.iter().map(|(s, v)| json!({ "subject": s, "version": v })).collect::<Vec<_>>())))
}

async fn subjects_of_id(State(pool): State<PgPool>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    store::schema_by_id(&pool, id).await?;
    let mut subjects: Vec<String> = store::usages_of(&pool, id).await?.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(reply(json!(subjects)))
}

#[derive(Deserialize)]
struct LevelBody {
    compatibility: String,
}

async fn global_config(State(pool): State<PgPool>) -> Result<Response, RegistryError> {
    let mut db = pool.acquire().await?;
    Ok(reply(json!({ "compatibilityLevel": store::effective_level(&mut db, "").await? })))
}

async fn set_global_config(
    State(pool): State<PgPool>,
    Body(body): Body<LevelBody>,
) -> Result<Response, RegistryError> {
    let level = parse_level(&body.compatibility)?;
    store::set_level(&pool, "", level).await?;
    Ok(reply(json!({ "compatibility": level })))
}

async fn subject_config(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Response, RegistryError> {
    let mut db = pool.acquire().await?;
    let level = match store::subject_level(&mut db, &subject).await? {
        Some(level) => level,
        None if flags.default_to_global => store::effective_level(&mut db, &subject).await?,
        None => return Err(RegistryError::SubjectCompatibilityNotConfigured(subject)),
    };
    Ok(reply(json!({ "compatibilityLevel": level })))
}

async fn set_subject_config(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Body(body): Body<LevelBody>,
) -> Result<Response, RegistryError> {
    let level = parse_level(&body.compatibility)?;
    store::set_level(&pool, &subject, level).await?;
    Ok(reply(json!({ "compatibility": level })))
}

async fn delete_subject_config(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
) -> Result<Response, RegistryError> {
    match store::delete_level(&pool, &subject).await? {
        Some(previous) => Ok(reply(json!({ "compatibilityLevel": previous }))),
        None => Err(RegistryError::SubjectNotFound(subject)),
    }
}

fn compatibility_reply(problems: Vec<String>, verbose: bool) -> Response {
    if verbose {
        reply(json!({ "is_compatible": problems.is_empty(), "messages": problems }))
    } else {
        reply(json!({ "is_compatible": problems.is_empty() }))
    }
}

async fn test_against_version(
    State(pool): State<PgPool>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    Body(body): Body<SchemaBody>,
) -> Result<Response, RegistryError> {
    let (schema, _) = body.parse()?;
    let row = find_version(&pool, &subject, &version, false).await?;
    let mut db = pool.acquire().await?;
    let level = store::effective_level(&mut db, &subject).await?;
    // Against one named version, a transitive level means its non-transitive self.
    let level = level.trim_end_matches("_TRANSITIVE");
    let problems = compatibility::check(level, &schema, &parse_all(std::slice::from_ref(&row))?);
    Ok(compatibility_reply(problems, flags.verbose))
}

async fn test_against_all(
    State(pool): State<PgPool>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    Body(body): Body<SchemaBody>,
) -> Result<Response, RegistryError> {
    let (schema, _) = body.parse()?;
    let mut db = pool.acquire().await?;
    let live = store::versions(&mut db, &subject, false).await?;
    let level = store::effective_level(&mut db, &subject).await?;
    let problems = compatibility::check(&level, &schema, &parse_all(&live)?);
    Ok(compatibility_reply(problems, flags.verbose))
}
