//! The `operations` table: Route 53 Domains operations that wait on their
//! domain's registrant, and the join the sweep settles them by.

use super::records::{
    OpenOperationRow, OperationRecord, OperationRow, OPERATIONS_VIEW, OPERATION_COLUMNS,
};
use super::{on_tx, with_pool, with_writer, OpenOperation, Store, Tx};
use chrono::{DateTime, Utc};

use crate::domain::{DomainName, EmailKey, OperationStatus, OperationType, Status, StatusFlag};
use crate::Result;

/// Writes `$new` over `$old` only if the row still holds `$old`'s status
/// and flag; evaluates to the rows changed. `$exec` is a pool or connection.
macro_rules! update_operation {
    ($exec:expr, $old:expr, $new:expr) => {{
        let (old, new): (&OperationRecord, &OperationRecord) = ($old, $new);
        sqlx::query(
            "UPDATE operations SET status = $2, status_flag = $3, message = $4, last_updated_at = $5 \
             WHERE id = $1 AND status = $6 AND status_flag IS NOT DISTINCT FROM $7",
        )
        .bind(&new.operation_id)
        .bind(new.status.as_str())
        .bind(new.status_flag.map(StatusFlag::as_str))
        .bind(&new.message)
        .bind(new.last_updated_date)
        .bind(old.status.as_str())
        .bind(old.status_flag.map(StatusFlag::as_str))
        .execute($exec)
        .await?
        .rows_affected()
    }};
}

impl Tx {
    pub(crate) async fn insert_operation(&mut self, op: &OperationRecord) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(&format!(
            "INSERT INTO operations ({OPERATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&op.operation_id)
            .bind(op.domain_name.as_str())
            .bind(op.op_type.as_str())
            .bind(op.status.as_str())
            .bind(op.status_flag.map(StatusFlag::as_str))
            .bind(&op.message)
            .bind(op.submitted_date)
            .bind(op.last_updated_date)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Open operations (with no flag, or ours) of an address's domains,
    /// locked for settling.
    pub(crate) async fn open_operations_of_address(
        &mut self,
        email_key: &EmailKey,
    ) -> Result<Vec<OperationRecord>> {
        let rows: Vec<OperationRow> = on_tx!(self, conn, d => sqlx::query_as(&format!(
            "SELECT {OPERATION_COLUMNS} FROM operations \
             WHERE status IN ('SUBMITTED', 'IN_PROGRESS') \
               AND (status_flag IS NULL OR status_flag = 'PENDING_CUSTOMER_ACTION') \
               AND domain_name IN (SELECT d.name FROM domains d JOIN contacts c \
                   ON c.external_id = d.contact_external_id WHERE c.email_key = $1) \
             ORDER BY submitted_at{}", d::FOR_UPDATE))
            .bind(email_key.as_str())
            .fetch_all(&mut *conn)
            .await?);
        rows.into_iter().map(OperationRow::into_domain).collect()
    }

    pub(crate) async fn update_operation(
        &mut self,
        old: &OperationRecord,
        new: &OperationRecord,
    ) -> Result<bool> {
        Ok(on_tx!(self, conn, d => update_operation!(&mut *conn, old, new)) == 1)
    }
}

impl Store {
    /// Records an operation on its own (see [`Store::add_operation`] for
    /// one that changes its registrant).
    pub async fn insert_operation(&self, op: &OperationRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.insert_operation(op).await?;
        tx.commit().await
    }

    pub async fn operation(&self, id: &str) -> Result<Option<OperationRecord>> {
        with_pool!(self, pool, d => {
            let row: Option<OperationRow> = sqlx::query_as(&format!(
                "SELECT {OPERATION_COLUMNS} FROM {OPERATIONS_VIEW} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(OperationRow::into_domain).transpose()
        })
    }

    /// Operations, newest first, optionally of one domain and/or one flag.
    pub async fn operations(
        &self,
        domain: Option<&DomainName>,
        flag: Option<StatusFlag>,
        limit: i64,
    ) -> Result<Vec<OperationRecord>> {
        with_pool!(self, pool, d => {
            let rows: Vec<OperationRow> = sqlx::query_as(&format!(
                "SELECT {OPERATION_COLUMNS} FROM {OPERATIONS_VIEW} \
                 WHERE ($1 IS NULL OR domain_name = $1) AND ($2 IS NULL OR status_flag = $2) \
                 ORDER BY submitted_at DESC, id DESC LIMIT $3"))
                .bind(domain.map(DomainName::as_str))
                .bind(flag.map(StatusFlag::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(OperationRow::into_domain).collect()
        })
    }

    /// Open operations that wait on their registrant (no flag, or ours),
    /// with the registrant's verification status.
    pub async fn open_operations(&self) -> Result<Vec<OpenOperation>> {
        with_pool!(self, pool, d => {
            let rows: Vec<OpenOperationRow> = sqlx::query_as(
                "SELECT o.id, o.domain_name, o.type, o.status, o.status_flag, o.message, \
                        o.submitted_at, o.last_updated_at, v.status AS registrant_status, \
                        v.email_key AS registrant_email_key \
                 FROM operations o \
                 LEFT JOIN domains dm ON dm.name = o.domain_name \
                 LEFT JOIN contacts c ON c.external_id = dm.contact_external_id \
                 LEFT JOIN verifications v ON v.email_key = c.email_key \
                 WHERE o.status IN ('SUBMITTED', 'IN_PROGRESS') \
                   AND (o.status_flag IS NULL OR o.status_flag = 'PENDING_CUSTOMER_ACTION') \
                 ORDER BY o.submitted_at")
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(OpenOperation {
                        registrant_status: r.registrant_status.as_deref().map(Status::parse).transpose()?,
                        registrant_email_key: r.registrant_email_key.map(EmailKey::try_from).transpose()?,
                        operation: r.op.into_domain()?,
                    })
                })
                .collect()
        })
    }

    /// Writes `new` over `old` only if the row still holds `old`'s status and
    /// flag, so a concurrent change by another system is never overwritten.
    pub async fn update_operation(
        &self,
        old: &OperationRecord,
        new: &OperationRecord,
    ) -> Result<bool> {
        Ok(with_writer!(self, pool, d => update_operation!(pool, old, new)) == 1)
    }
}

/// Which operations a page lists (every field optional: empty matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub domain: Option<DomainName>,
    pub status_flag: Option<StatusFlag>,
    pub statuses: Vec<OperationStatus>,
    pub types: Vec<OperationType>,
    /// Only operations submitted at or after this instant.
    pub submitted_since: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// Where the previous page ended: its last operation's sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCursor {
    pub submitted_at: DateTime<Utc>,
    pub id: String,
}

/// A value bound to a page query, in placeholder order.
enum Bind {
    Text(String),
    Time(DateTime<Utc>),
}

impl Store {
    /// One page of operations in `(submitted_at, id)` order (descending
    /// unless `oldest_first`), strictly after `after`: keyset pagination,
    /// so rows added or settled between pages neither repeat nor vanish.
    pub async fn operations_page(
        &self,
        filter: &OperationFilter,
        after: Option<&OperationCursor>,
        limit: i64,
    ) -> Result<Vec<OperationRecord>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let next = |binds: &mut Vec<Bind>, b| {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(d) = &filter.domain {
            clauses.push(format!(
                "domain_name = {}",
                next(&mut binds, Bind::Text(d.as_str().into()))
            ));
        }
        if let Some(f) = filter.status_flag {
            clauses.push(format!(
                "status_flag = {}",
                next(&mut binds, Bind::Text(f.as_str().into()))
            ));
        }
        if !filter.statuses.is_empty() {
            let p: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| next(&mut binds, Bind::Text(s.as_str().into())))
                .collect();
            clauses.push(format!("status IN ({})", p.join(", ")));
        }
        if !filter.types.is_empty() {
            let p: Vec<String> = filter
                .types
                .iter()
                .map(|t| next(&mut binds, Bind::Text(t.as_str().into())))
                .collect();
            clauses.push(format!("type IN ({})", p.join(", ")));
        }
        if let Some(since) = filter.submitted_since {
            clauses.push(format!(
                "submitted_at >= {}",
                next(&mut binds, Bind::Time(since))
            ));
        }
        let (cmp, order) = if filter.oldest_first {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        if let Some(c) = after {
            let t = next(&mut binds, Bind::Time(c.submitted_at));
            let id = next(&mut binds, Bind::Text(c.id.clone()));
            clauses.push(format!(
                "(submitted_at {cmp} {t} OR (submitted_at = {t} AND id {cmp} {id}))"
            ));
        }
        // LIMIT is bound last, after the filters' values.
        let limit_at = format!("${}", binds.len() + 1);
        let where_ = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM {OPERATIONS_VIEW} {where_}\
             ORDER BY submitted_at {order}, id {order} LIMIT {limit_at}"
        );
        with_pool!(self, pool, d => {
            let mut q = sqlx::query_as::<_, OperationRow>(&sql);
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Time(t) => q.bind(*t),
                };
            }
            let rows = q.bind(limit).fetch_all(pool).await?;
            rows.into_iter().map(OperationRow::into_domain).collect()
        })
    }
}
