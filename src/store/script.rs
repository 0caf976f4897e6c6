//! A transaction's statements sent together: on MySQL as one multi-statement
//! script, one round trip for all of them, with every value written into
//! the text as a literal that cannot break out of it; on SQLite, which runs
//! in the process and has no round trips to save, and on a Galera node (see
//! [`super::Store::connect`]), one prepared statement after another with
//! bound values.
//!
//! Round trips are what a short transaction spends its time on: each costs
//! both processes a send, a receive and a wake-up, more than the statement
//! itself. The refresh transaction makes two (its reads, then its writes and
//! COMMIT) instead of one per statement.

use std::fmt::Write as _;

use futures_util::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either};

/// A value for a `?` placeholder.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl<'a> From<i64> for Value<'a> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl<'a> From<crate::clock::UnixMillis> for Value<'a> {
    fn from(value: crate::clock::UnixMillis) -> Self {
        Self::Int(value.as_millis())
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Self::Null, Self::Text)
    }
}

/// One statement: SQL with `?` placeholders (and no other `?`), and its
/// values.
#[derive(Debug, Clone)]
pub(super) struct Statement<'a> {
    sql: std::borrow::Cow<'static, str>,
    values: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    pub(super) fn new(sql: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// The value of the next placeholder.
    pub(super) fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.values.push(value.into());
        self
    }
}

/// How a transaction's statements travel to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// All in one multi-statement script (MySQL).
    OneScript,
    /// One prepared statement after another (SQLite, Galera).
    OneByOne,
}

/// What one statement of a script returned.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) rows: Vec<AnyRow>,
    pub(super) rows_affected: u64,
}

/// Runs `statements` in order on `conn`, stopping at the first that fails,
/// and gives what each returned. A failure leaves the statements before it
/// done: a script that began a transaction must roll it back.
pub(super) async fn run(
    conn: &mut AnyConnection,
    delivery: Delivery,
    statements: &[Statement<'_>],
) -> Result<Vec<Outcome>, sqlx::Error> {
    match delivery {
        Delivery::OneScript => run_as_one_script(conn, statements).await,
        Delivery::OneByOne => run_one_by_one(conn, statements).await,
    }
}

async fn run_as_one_script(
    conn: &mut AnyConnection,
    statements: &[Statement<'_>],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let script = mysql_script(statements)?;
    let mut outcomes = Vec::with_capacity(statements.len());
    let mut current = Outcome::default();
    // Each statement's rows, then its result: MySQL ends every statement of
    // a script, a SELECT too, with one.
    let mut results = sqlx::raw_sql(&script).fetch_many(conn);
    while let Some(item) = results.try_next().await? {
        match item {
            Either::Left(result) => {
                current.rows_affected = result.rows_affected();
                outcomes.push(std::mem::take(&mut current));
            }
            Either::Right(row) => current.rows.push(row),
        }
    }
    if outcomes.len() != statements.len() {
        return Err(sqlx::Error::Protocol(format!(
            "a script of {} statements returned {} results",
            statements.len(),
            outcomes.len()
        )));
    }
    Ok(outcomes)
}

async fn run_one_by_one(
    conn: &mut AnyConnection,
    statements: &[Statement<'_>],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes = Vec::with_capacity(statements.len());
    for statement in statements {
        let mut query = sqlx::query(&statement.sql);
        for value in &statement.values {
            query = match *value {
                Value::Int(value) => query.bind(value),
                Value::Text(value) => query.bind(value),
                Value::Null => query.bind(None::<String>),
            };
        }
        let outcome = if returns_rows(&statement.sql) {
            Outcome {
                rows: query.fetch_all(&mut *conn).await?,
                rows_affected: 0,
            }
        } else {
            Outcome {
                rows: Vec::new(),
                rows_affected: query.execute(&mut *conn).await?.rows_affected(),
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn returns_rows(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("select"))
}

/// The statements as one MySQL script, each value written as a literal.
fn mysql_script(statements: &[Statement<'_>]) -> Result<String, sqlx::Error> {
    let mut script = String::with_capacity(statements.iter().map(|s| s.sql.len() + 96).sum());
    for (index, statement) in statements.iter().enumerate() {
        if index > 0 {
            script.push_str(";\n");
        }
        let mut values = statement.values.iter();
        for (position, part) in statement.sql.split('?').enumerate() {
            if position > 0 {
                let value = values.next().ok_or_else(|| wrong_arity(statement))?;
                push_mysql_literal(&mut script, *value);
            }
            script.push_str(part);
        }
        if values.next().is_some() {
            return Err(wrong_arity(statement));
        }
    }
    Ok(script)
}

fn wrong_arity(statement: &Statement<'_>) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "{} values for the placeholders of: {}",
        statement.values.len(),
        statement.sql
    ))
}

/// Writes `value` as a MySQL literal. Text is written as the hexadecimal
/// digits of its UTF-8 bytes (`_utf8mb4 X'…'`), so that nothing in it is
/// ever read as SQL, whatever the server's `sql_mode` says about quotes and
/// backslashes; a column compares with it in the column's own collation.
fn push_mysql_literal(script: &mut String, value: Value<'_>) {
    match value {
        Value::Int(value) => {
            let _ = write!(script, "{value}");
        }
        Value::Null => script.push_str("NULL"),
        Value::Text(text) => {
            script.push_str("_utf8mb4 X'");
            for byte in text.bytes() {
                let _ = write!(script, "{byte:02x}");
            }
            script.push('\'');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_writes_text_as_hex_digits_and_numbers_as_numbers() {
        let statements = [
            Statement::new("START TRANSACTION"),
            Statement::new("UPDATE t SET a = ?, b = ? WHERE c = ?")
                .bind(42)
                .bind(None::<&str>)
                .bind("x'; DROP TABLE t; --\\"),
        ];
        assert_eq!(
            mysql_script(&statements).unwrap(),
            "START TRANSACTION;\nUPDATE t SET a = 42, b = NULL WHERE c = \
             _utf8mb4 X'78273b2044524f50205441424c4520743b202d2d5c'"
        );
    }

    #[test]
    fn a_script_refuses_a_statement_with_too_few_or_too_many_values() {
        let too_few = [Statement::new("SELECT ? + ?").bind(1)];
        assert!(mysql_script(&too_few).is_err());
        let too_many = [Statement::new("SELECT ?").bind(1).bind(2)];
        assert!(mysql_script(&too_many).is_err());
    }

    #[test]
    fn a_select_is_recognised_as_returning_rows() {
        assert!(returns_rows("SELECT 1"));
        assert!(returns_rows("  select 1"));
        assert!(!returns_rows("UPDATE t SET a = 1"));
        assert!(!returns_rows("BEGIN"));
    }
}
