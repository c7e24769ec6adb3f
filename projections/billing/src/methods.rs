//! A member's stored payment methods (provider tokens, never card numbers).

use sqlx::PgConnection;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentMethod {
    pub payment_method_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub method: String,
    #[serde(skip)]
    pub provider_token: Option<String>,
    pub label: Option<String>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "payment_method_id, organization_id, member_id, method, provider_token, label, is_default, created_at";

/// The organization's method of that id; another organization's is not seen.
pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    id: &str,
) -> Result<Option<PaymentMethod>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE organization_id = $1 AND payment_method_id = $2"
    )))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// The member's first method becomes the default whatever the command says; a new default
/// takes the flag from the others.
pub async fn insert(tx: &mut PgConnection, m: &PaymentMethod) -> Result<bool, sqlx::Error> {
    let has_any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE organization_id = $1 AND member_id = $2)",
    )
    .bind(&m.organization_id)
    .bind(&m.member_id)
    .fetch_one(&mut *tx)
    .await?;
    let is_default = m.is_default || !has_any;
    if is_default {
        sqlx::query(
            "UPDATE payment_methods SET is_default = false WHERE organization_id = $1 AND member_id = $2",
        )
        .bind(&m.organization_id)
        .bind(&m.member_id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payment_methods ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&m.payment_method_id)
    .bind(&m.organization_id)
    .bind(&m.member_id)
    .bind(&m.method)
    .bind(&m.provider_token)
    .bind(&m.label)
    .bind(is_default)
    .bind(m.created_at)
    .execute(tx)
    .await?;
    Ok(is_default)
}

/// The member's default method.
pub async fn default_for(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &str,
) -> Result<Option<PaymentMethod>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE organization_id = $1 AND member_id = $2 AND is_default"
    )))
    .bind(organization_id)
    .bind(member_id)
    .fetch_optional(tx)
    .await
}
