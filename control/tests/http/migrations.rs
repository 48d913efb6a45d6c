//! The SQLite and PostgreSQL migrations build the same schema: same tables, same columns
//! (name, nullability, type family), same indexes (by name, with their columns, uniqueness
//! and whether they are partial), same unique and primary keys; and every constraint storage
//! code matches on (`store::constraints::ALL`) exists on both.
//!
//! The PostgreSQL half needs `KEYGATE_TEST_POSTGRES_URL` (`cargo xtask with-postgres`); without
//! it only the SQLite checks run, with a printed note.

use std::collections::BTreeSet;

use crate::common::TestServer;
use keygate_control::store::{constraints, Db};

/// Differences that are intended, each with why. Entries are the lines the comparison prints
/// (`only sqlite: ...` / `only postgres: ...`). Keep this short.
const INTENDED: &[(&str, &str)] = &[];

/// A schema, as comparable lines: `table t`, `column t.c family null|not null`,
/// `index name on t(a,b) [unique] [partial]`, `unique t(a,b)`, `primary key t(a)`.
type Schema = BTreeSet<String>;

/// The type family of a declared or reported type.
fn family(declared: &str) -> String {
    let t = declared.to_ascii_lowercase();
    let family = if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("bool") {
        "bool"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else if t.contains("real")
        || t.contains("floa")
        || t.contains("doub")
        || t.contains("numeric")
    {
        "float"
    } else {
        return format!("other({t})");
    };
    family.to_owned()
}

fn nullability(nullable: bool) -> &'static str {
    if nullable {
        "null"
    } else {
        "not null"
    }
}

/// The rows of a SQLite `pragma_*($1)` table-valued query about `name`.
async fn pragma<T>(pool: &sqlx::SqlitePool, sql: &str, name: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .bind(name)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn sqlite_schema(db: &Db) -> Schema {
    let Db::Sqlite(pool) = db else { unreachable!() };
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
            AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &tables {
        schema.insert(format!("table {table}"));
        let columns: Vec<(String, String, bool, i64)> = pragma(
            pool,
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
            table,
        )
        .await;
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (name, declared, not_null, pk_pos) in columns {
            // A primary key column is NOT NULL on PostgreSQL; on SQLite the table's
            // declaration says so only for INTEGER PRIMARY KEY, but keygate never stores a
            // NULL key, so it is compared as NOT NULL.
            let nullable = !not_null && pk_pos == 0;
            schema.insert(format!(
                "column {table}.{name} {} {}",
                family(&declared),
                nullability(nullable)
            ));
            if pk_pos > 0 {
                pk.push((pk_pos, name));
            }
        }
        if !pk.is_empty() {
            pk.sort();
            let cols: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
            schema.insert(format!("primary key {table}({})", cols.join(",")));
        }
        let indexes: Vec<(String, bool, String, bool)> = pragma(
            pool,
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list($1) ORDER BY name",
            table,
        )
        .await;
        for (name, unique, origin, partial) in indexes {
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let cols = cols.join(",");
            match origin.as_str() {
                // The primary key's own index (non-INTEGER keys): covered by `primary key`.
                "pk" => {}
                "u" => {
                    schema.insert(format!("unique {table}({cols})"));
                }
                _ => {
                    schema.insert(index_line(&name, table, &cols, unique, partial));
                }
            }
        }
    }
    schema
}

fn index_line(name: &str, table: &str, cols: &str, unique: bool, partial: bool) -> String {
    format!(
        "index {name} on {table}({cols}){}{}",
        if unique { " unique" } else { "" },
        if partial { " partial" } else { "" }
    )
}

async fn postgres_schema(db: &Db) -> Schema {
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    let mut schema = Schema::new();
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
           FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
          ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, name, data_type, is_nullable) in columns {
        schema.insert(format!("table {table}"));
        schema.insert(format!(
            "column {table}.{name} {} {}",
            family(&data_type),
            nullability(is_nullable == "YES")
        ));
    }
    // Every index: its name, table, columns in order, uniqueness, whether partial, and the
    // kind of constraint it backs ('p' primary key, 'u' unique, '' none).
    let indexes: Vec<(String, String, String, bool, bool, String)> = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text,
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                   FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum),
                ix.indisunique, ix.indpred IS NOT NULL,
                COALESCE((SELECT c.contype::text FROM pg_constraint c
                           WHERE c.conindid = ix.indexrelid AND c.contype IN ('p', 'u')), '')
           FROM pg_index ix
           JOIN pg_class i ON i.oid = ix.indexrelid
           JOIN pg_class t ON t.oid = ix.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name, table, cols, unique, partial, backs) in indexes {
        match backs.as_str() {
            "p" => schema.insert(format!("primary key {table}({cols})")),
            "u" => schema.insert(format!("unique {table}({cols})")),
            _ => schema.insert(index_line(&name, &table, &cols, unique, partial)),
        };
    }
    schema
}

/// Every constraint of `constraints::ALL` is in the SQLite schema: a UNIQUE as a unique index
/// (or constraint) over exactly its columns, a CHECK by its name in the table's definition.
async fn sqlite_has_constraints(db: &Db, schema: &Schema) {
    let Db::Sqlite(pool) = db else { unreachable!() };
    for c in constraints::ALL {
        if c.columns.is_empty() {
            let sql: String = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(c.table)
            .fetch_one(pool)
            .await
            .unwrap_or_default();
            assert!(
                sql.contains(&format!("CONSTRAINT {} CHECK", c.name)),
                "SQLite: table {} has no CHECK named {}",
                c.table,
                c.name
            );
        } else {
            let cols = c.columns.join(",");
            let unique = format!("unique {}({cols})", c.table);
            let indexed = schema.iter().any(|l| {
                l.starts_with("index ")
                    && (l.ends_with(" unique") || l.ends_with(" unique partial"))
                    && l.contains(&format!(" on {}({cols})", c.table))
            });
            assert!(
                schema.contains(&unique) || indexed,
                "SQLite: no unique index over {}({cols}) for {}",
                c.table,
                c.name
            );
        }
    }
}

/// Every constraint of `constraints::ALL` exists on PostgreSQL by its name (a constraint or
/// a unique index).
async fn postgres_has_constraints(db: &Db) {
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    for c in constraints::ALL {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)
                 OR EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'i')",
        )
        .bind(c.name)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(found, "PostgreSQL: no constraint or index named {}", c.name);
    }
}

/// The schema was read, not just empty on both sides: every kind of line is there.
fn read_in_full(schema: &Schema, backend: &str) {
    for kind in ["table ", "column ", "primary key ", "unique ", "index "] {
        assert!(
            schema.iter().any(|l| l.starts_with(kind)),
            "{backend}: no `{kind}` read"
        );
    }
    for flag in [" unique", " partial"] {
        assert!(
            schema
                .iter()
                .any(|l| l.starts_with("index ") && l.ends_with(flag)),
            "{backend}: no index with `{flag}` read"
        );
    }
}

async fn migrated(url: &str) -> Db {
    let db = Db::connect(url).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = migrated(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
    let lite = sqlite_schema(&sqlite).await;
    read_in_full(&lite, "SQLite");
    sqlite_has_constraints(&sqlite, &lite).await;
    let Some(url) = TestServer::new_postgres_database().await else {
        return;
    };
    let postgres = migrated(&url).await;
    let pg = postgres_schema(&postgres).await;
    read_in_full(&pg, "PostgreSQL");
    postgres_has_constraints(&postgres).await;
    let intended: BTreeSet<&str> = INTENDED.iter().map(|(line, _)| *line).collect();
    let mut differences: Vec<String> = lite
        .difference(&pg)
        .map(|l| format!("only sqlite: {l}"))
        .chain(pg.difference(&lite).map(|l| format!("only postgres: {l}")))
        .filter(|l| !intended.contains(l.as_str()))
        .collect();
    differences.sort();
    // An allowance whose difference is gone must go too.
    let only =
        |line: &str, here: &Schema, there: &Schema| here.contains(line) && !there.contains(line);
    let stale: Vec<&&str> = intended
        .iter()
        .filter(|l| match l.split_once(": ") {
            Some(("only sqlite", line)) => !only(line, &lite, &pg),
            Some(("only postgres", line)) => !only(line, &pg, &lite),
            _ => true,
        })
        .collect();
    sqlite.close().await;
    postgres.close().await;
    assert!(
        differences.is_empty(),
        "the migrations differ:\n  {}",
        differences.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "INTENDED lists differences that are gone: {stale:?}"
    );
}
