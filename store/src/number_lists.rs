//! The tenant's number lists: 発信規制 (numbers never dialled) and 着信拒否 (inbound calls
//! refused), each a set of numbers with a note.

use crate::{placeholders, Db, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberList {
    /// 発信規制: `dnc_numbers`.
    DoNotCall,
    /// 着信拒否: `inbound_blocks`.
    InboundBlocks,
}

impl NumberList {
    fn table(self) -> &'static str {
        match self {
            NumberList::DoNotCall => "dnc_numbers",
            NumberList::InboundBlocks => "inbound_blocks",
        }
    }
}

/// Numbers per INSERT statement of an upload, per backend (as the lead import's).
const ROWS_SQLITE: usize = 64;
const ROWS_POSTGRES: usize = 400;
/// Values per DELETE statement of a bulk delete.
const DELETE_CHUNK: usize = 500;

/// Adds `(number, note)` pairs, in one bulk writing transaction (the file is added whole or not at
/// all); a number already listed (or repeated: the first one's note is kept) is skipped. The count
/// added.
pub async fn add(db: &Db, tenant_id: i64, list: NumberList, numbers: &[(String, String)], now_ms: i64) -> Result<i64> {
    // Many rows a statement; the unique (tenant_id, number) key skips a number already listed, so
    // what a statement did not insert is a duplicate.
    let per_statement = if db.is_postgres() { ROWS_POSTGRES } else { ROWS_SQLITE };
    let mut added = 0i64;
    let mut tx = db.begin_bulk_write().await?;
    for chunk in numbers.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO {} (tenant_id, number, note, created_at) VALUES {} ON CONFLICT (tenant_id, number) DO NOTHING",
            list.table(),
            placeholders(db.backend, chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (tel, note) in chunk {
            q = q.bind(tenant_id).bind(tel.as_str()).bind(note.as_str()).bind(now_ms);
        }
        added += q.execute(&mut *tx).await?.rows_affected() as i64;
    }
    tx.commit().await?;
    Ok(added)
}

/// Which entries a bulk delete takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    All,
    Ids(Vec<i64>),
    Numbers(Vec<String>),
}

/// Deletes the chosen entries, in one writing transaction; the count deleted.
pub async fn delete(db: &Db, tenant_id: i64, list: NumberList, chosen: &Chosen) -> Result<u64> {
    let table = list.table();
    let mut tx = db.begin_write().await?;
    let deleted = match chosen {
        Chosen::All => sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        Chosen::Ids(ids) => delete_in(&mut tx, tenant_id, table, "id", ids).await?,
        Chosen::Numbers(numbers) => delete_in(&mut tx, tenant_id, table, "number", numbers).await?,
    };
    tx.commit().await?;
    Ok(deleted)
}

/// A few hundred values a statement rather than one statement a value.
async fn delete_in<T>(
    conn: &mut sqlx::AnyConnection,
    tenant_id: i64,
    table: &str,
    column: &str,
    values: &[T],
) -> Result<u64>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Clone + Send + Sync + 'static,
{
    let mut deleted = 0;
    for chunk in values.chunks(DELETE_CHUNK) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} IN ({})", marks.join(", "));
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for v in chunk.iter().cloned() {
            q = q.bind(v);
        }
        deleted += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(deleted)
}
