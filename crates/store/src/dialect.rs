//! The few places where SQLite, PostgreSQL and MySQL/MariaDB spell the same thing differently.
//!
//! Migrations are written once, in the portable subset of `migrations/0001_init.sql`, and
//! translated here when they are applied, so a migration added later runs on every engine
//! without a per-engine copy. Queries are written once with `?` placeholders and translated for
//! PostgreSQL, which numbers them.

/// A SQL engine mayfly stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    /// The engine's name as an operator writes it in ca.json's `db.type`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
            Dialect::MySql => "mysql",
        }
    }

    /// `query` (written with `?` placeholders) in this engine's placeholder syntax.
    pub fn placeholders(self, query: &str) -> String {
        if self != Dialect::Postgres {
            return query.to_owned();
        }
        let mut out = String::with_capacity(query.len() + 8);
        let mut number = 0;
        let mut in_literal = false;
        for c in query.chars() {
            match c {
                '\'' => {
                    in_literal = !in_literal;
                    out.push(c);
                }
                '?' if !in_literal => {
                    number += 1;
                    out.push('$');
                    out.push_str(&number.to_string());
                }
                _ => out.push(c),
            }
        }
        out
    }

    /// An insert that does nothing (and affects no row) when a row with the same key exists:
    /// the check and the record are one statement, so two instances cannot both pass the check.
    /// `rest` is everything after `INSERT INTO`, with `?` placeholders.
    pub fn insert_unless_present(self, rest: &str) -> String {
        match self {
            // INSERT IGNORE would also turn other errors (a value too long) into warnings; the
            // crate checks lengths before writing, and MySQL runs in strict mode anyway.
            Dialect::MySql => format!("INSERT IGNORE INTO {rest}"),
            Dialect::Sqlite | Dialect::Postgres => {
                self.placeholders(&format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"))
            }
        }
    }

    /// [`Dialect::placeholders`], marked safe for sqlx. Only text written in this crate goes
    /// through here; values are always bound.
    pub(crate) fn sql(self, query: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.placeholders(query))
    }

    /// [`Dialect::insert_unless_present`], marked safe for sqlx; `rest` is a constant of this
    /// crate.
    pub(crate) fn insert_sql(self, rest: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.insert_unless_present(rest))
    }

    /// Splits a migration into statements and rewrites its column types for this engine.
    ///
    /// Comments are dropped. The portable types that need a translation:
    /// - `BLOB`: `BYTEA` on PostgreSQL; `LONGBLOB` on MySQL, whose `BLOB` stops at 64 KB (a CRL
    ///   or a certificate with a long chain would be cut off or refused).
    /// - `TEXT`: `LONGTEXT` on MySQL for the same reason.
    /// - `VARCHAR(n)` and `TEXT` on MySQL get a binary collation: MySQL's default compares
    ///   case-insensitively, so `jti` "Ab" and "aB" would be one key and a fresh token refused.
    /// - `DROP INDEX name ON table` is MySQL's form; SQLite and PostgreSQL name no table.
    /// - `CREATE INDEX ... WHERE ...` (a partial index) becomes a whole index on MySQL, which
    ///   has no partial ones.
    /// - `ALTER TABLE ... SET STORAGE ...` is PostgreSQL's alone (how it keeps large values);
    ///   the other engines skip it.
    /// - `AUTO_ID`, a column type of mayfly's own: a 64-bit primary key the engine assigns in
    ///   increasing order and never reuses.
    pub fn translate_migration(self, sql: &str) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        let mut rest = sql;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("--") {
                let end = rest.find('\n').unwrap_or(rest.len());
                rest = &rest[end..];
                continue;
            }
            if c == '\'' {
                // A string literal is copied as it is, quotes doubled inside it included.
                let mut end = 1;
                let bytes = rest.as_bytes();
                while end < bytes.len() {
                    if bytes[end] == b'\'' {
                        if bytes.get(end + 1) == Some(&b'\'') {
                            end += 2;
                            continue;
                        }
                        end += 1;
                        break;
                    }
                    end += 1;
                }
                current.push_str(&rest[..end]);
                rest = &rest[end..];
                continue;
            }
            if c.is_ascii_alphabetic() || c == '_' {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                rest = &rest[end..];
                current.push_str(&self.translate_word(word, &mut rest));
                continue;
            }
            if c == ';' {
                push_statement(&mut statements, &current);
                current.clear();
            } else {
                current.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        push_statement(&mut statements, &current);
        if self != Dialect::Postgres {
            statements.retain(|statement| {
                !(statement.starts_with("ALTER TABLE") && statement.contains(" SET STORAGE "))
            });
        }
        if self == Dialect::MySql {
            for statement in &mut statements {
                if statement.starts_with("CREATE INDEX")
                    && let Some(at) = statement.find(" WHERE ")
                {
                    statement.truncate(at);
                    let end = statement.trim_end().len();
                    statement.truncate(end);
                }
            }
        }
        if self != Dialect::MySql {
            for statement in &mut statements {
                if statement.starts_with("DROP INDEX")
                    && let Some(on) = statement.find(" ON ")
                {
                    statement.truncate(on);
                }
            }
        }
        statements
    }

    /// One identifier or keyword of a migration; `rest` follows it, and a `VARCHAR`'s `(n)` is
    /// taken from it so the collation goes after the length.
    fn translate_word(self, word: &str, rest: &mut &str) -> String {
        const MYSQL_BINARY: &str = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
        match (self, word.to_ascii_uppercase().as_str()) {
            (Dialect::Sqlite, "AUTO_ID") => "INTEGER PRIMARY KEY AUTOINCREMENT".to_owned(),
            (Dialect::Postgres, "AUTO_ID") => {
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY".to_owned()
            }
            (Dialect::MySql, "AUTO_ID") => "BIGINT AUTO_INCREMENT PRIMARY KEY".to_owned(),
            (Dialect::Postgres, "BLOB") => "BYTEA".to_owned(),
            (Dialect::MySql, "BLOB") => "LONGBLOB".to_owned(),
            (Dialect::MySql, "TEXT") => format!("LONGTEXT {MYSQL_BINARY}"),
            (Dialect::MySql, "VARCHAR") => {
                let trimmed = rest.trim_start();
                if trimmed.starts_with('(')
                    && let Some(close) = trimmed.find(')')
                {
                    let length = &trimmed[..=close];
                    *rest = &trimmed[close + 1..];
                    format!("VARCHAR{length} {MYSQL_BINARY}")
                } else {
                    word.to_owned()
                }
            }
            _ => word.to_owned(),
        }
    }
}

fn push_statement(statements: &mut Vec<String>, text: &str) {
    let statement = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if !statement.trim().is_empty() {
        statements.push(statement.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    const SAMPLE: &str = "-- a comment; with a semicolon and BLOB in it\n\
        CREATE TABLE t (\n    id VARCHAR(64) NOT NULL PRIMARY KEY, -- the key\n    \
        der BLOB NOT NULL,\n    note TEXT,\n    blob_text_count INTEGER DEFAULT 0\n);\n\
        INSERT INTO t (id, der, note) VALUES ('a; TEXT '' BLOB', X'00', 'x');\n";

    #[test]
    fn sqlite_keeps_the_portable_types() {
        let statements = Dialect::Sqlite.translate_migration(SAMPLE);
        assert_eq!(
            statements,
            vec![
                "CREATE TABLE t (\n    id VARCHAR(64) NOT NULL PRIMARY KEY,\n    der BLOB NOT NULL,\
                 \n    note TEXT,\n    blob_text_count INTEGER DEFAULT 0\n)"
                    .to_owned(),
                "INSERT INTO t (id, der, note) VALUES ('a; TEXT '' BLOB', X'00', 'x')".to_owned(),
            ]
        );
    }

    #[test]
    fn postgres_spells_blob_as_bytea() {
        let statements = Dialect::Postgres.translate_migration(SAMPLE);
        assert_eq!(statements.len(), 2);
        assert!(
            statements[0].contains("der BYTEA NOT NULL"),
            "{statements:?}"
        );
        assert!(statements[0].contains("note TEXT,"), "{statements:?}");
        // Words that merely contain a type name, and string literals, are left alone.
        assert!(statements[0].contains("blob_text_count INTEGER"));
        assert!(
            statements[1].contains("'a; TEXT '' BLOB'"),
            "{statements:?}"
        );
    }

    #[test]
    fn mysql_has_no_64_kb_columns_and_compares_keys_exactly() {
        let statements = Dialect::MySql.translate_migration(SAMPLE);
        let create = &statements[0];
        assert!(create.contains("der LONGBLOB NOT NULL"), "{create}");
        assert!(
            create.contains("note LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,"),
            "{create}"
        );
        assert!(
            create.contains(
                "id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY"
            ),
            "{create}"
        );
        assert!(
            !create.contains(" BLOB") && !create.contains(" TEXT"),
            "{create}"
        );
        assert!(statements[1].contains("'a; TEXT '' BLOB'"));
    }

    #[test]
    fn only_mysql_names_the_table_of_an_index_it_drops() {
        let sql = "DROP INDEX i ON t;\nCREATE INDEX j ON t (a);";
        assert_eq!(
            Dialect::MySql.translate_migration(sql),
            vec!["DROP INDEX i ON t", "CREATE INDEX j ON t (a)"]
        );
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(
                dialect.translate_migration(sql),
                vec!["DROP INDEX i", "CREATE INDEX j ON t (a)"]
            );
        }
    }

    #[test]
    fn mysql_makes_a_partial_index_whole() {
        let sql = "CREATE INDEX i ON t (a)\n    WHERE a IS NOT NULL;";
        assert_eq!(
            Dialect::MySql.translate_migration(sql),
            vec!["CREATE INDEX i ON t (a)"]
        );
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let statements = dialect.translate_migration(sql);
            assert_eq!(statements.len(), 1);
            assert!(
                statements[0].ends_with("WHERE a IS NOT NULL"),
                "{statements:?}"
            );
        }
    }

    #[test]
    fn only_postgres_is_told_how_to_store_a_column() {
        let sql = "ALTER TABLE t ADD COLUMN c BIGINT;\nALTER TABLE t ALTER COLUMN d SET STORAGE EXTERNAL;";
        assert_eq!(
            Dialect::Postgres.translate_migration(sql),
            vec![
                "ALTER TABLE t ADD COLUMN c BIGINT",
                "ALTER TABLE t ALTER COLUMN d SET STORAGE EXTERNAL"
            ]
        );
        for dialect in [Dialect::Sqlite, Dialect::MySql] {
            assert_eq!(
                dialect.translate_migration(sql),
                vec!["ALTER TABLE t ADD COLUMN c BIGINT"]
            );
        }
    }

    #[test]
    fn every_shipped_migration_translates_for_every_engine() {
        for &(version, sql) in crate::MIGRATIONS {
            for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
                let statements = dialect.translate_migration(sql);
                assert!(!statements.is_empty(), "migration {version} is empty");
                for statement in &statements {
                    assert!(!statement.contains("--"), "{version}: comment left in");
                    if dialect != Dialect::Sqlite {
                        assert!(!statement.contains(" BLOB"), "{version}: {statement}");
                    }
                }
            }
        }
    }

    #[test]
    fn auto_id_is_each_engines_increasing_key() {
        let sql = "CREATE TABLE log (id AUTO_ID, note TEXT NOT NULL)";
        let of = |dialect: Dialect| dialect.translate_migration(sql).remove(0);
        assert_eq!(
            of(Dialect::Sqlite),
            "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT NOT NULL)"
        );
        assert!(
            of(Dialect::Postgres)
                .contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,")
        );
        assert!(of(Dialect::MySql).contains("id BIGINT AUTO_INCREMENT PRIMARY KEY,"));
    }

    #[test]
    fn postgres_numbers_placeholders_outside_literals() {
        assert_eq!(
            Dialect::Postgres.placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        assert_eq!(Dialect::MySql.placeholders("b = ?"), "b = ?");
    }

    #[test]
    fn insert_unless_present_per_engine() {
        let rest = "t (a, b) VALUES (?, ?)";
        assert_eq!(
            Dialect::Postgres.insert_unless_present(rest),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            Dialect::MySql.insert_unless_present(rest),
            "INSERT IGNORE INTO t (a, b) VALUES (?, ?)"
        );
        assert_eq!(
            Dialect::Sqlite.insert_unless_present(rest),
            "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING"
        );
    }
}
