//! From ca.json's `db.dataSource` (and step's `db.database`) to the connection URL sqlx opens.
//!
//! step-ca's users write the Go MySQL driver's DSN (`user:pass@tcp(host:3306)/` with the
//! database in `"database"`) and PostgreSQL's `key=value` string; mayfly connects by URL. The
//! spellings are parsed by [`mayfly_config::datasource`]; this module only translates, and
//! refuses settings it cannot carry over rather than dropping them unseen. Errors never repeat
//! the password.

use mayfly_config::datasource::{DataSource, MysqlDsn, PgKeyValues};

use crate::Error;
use crate::dialect::Dialect;
use crate::networked::dialect_of;

/// Go MySQL DSN parameters that change nothing for mayfly (it sets its own session time zone and
/// reads times as integers), accepted so that step's data sources load.
const MYSQL_INERT_PARAMS: &[&str] = &["parseTime", "loc", "timeout", "readTimeout", "writeTimeout"];

/// libpq settings carried into the URL under the same name.
const PG_QUERY_KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
];

/// The connection URL for `source` on `dialect`, with `database` (step's `db.database`), when
/// given, in place of the one `source` names, as step-ca does.
pub(crate) fn server_url(
    dialect: Dialect,
    source: &DataSource,
    database: Option<&str>,
) -> Result<String, Error> {
    let text = source.as_str().trim();
    let database = database.filter(|d| !d.is_empty());
    let url = if text.contains("://") {
        if dialect_of(text) != Some(dialect) {
            let scheme = match dialect {
                Dialect::Postgres => "postgresql://",
                _ => "mysql://",
            };
            return Err(Error::Location(format!(
                "db.dataSource {:?} is not a {} URL: expected {scheme}user[:password]@host[:port]/database",
                source.redacted(),
                dialect.name()
            )));
        }
        match database {
            Some(database) => with_database(text, database),
            None => text.to_owned(),
        }
    } else {
        let field = |e: mayfly_config::Error| Error::Location(format!("db.dataSource: {e}"));
        match dialect {
            Dialect::MySql => mysql_url(&MysqlDsn::parse(text).map_err(field)?, database)?,
            Dialect::Postgres => postgres_url(&PgKeyValues::parse(text).map_err(field)?, database)?,
            Dialect::Sqlite => {
                return Err(Error::Location(
                    "db.dataSource: a SQLite database is a path, not a server".into(),
                ));
            }
        }
    };
    if dialect == Dialect::MySql && url_database(&url).is_empty() {
        return Err(Error::Location(
            "db.database: no MySQL database is named: set \"database\" beside \"dataSource\" \
             (or end the data source with /NAME)"
                .into(),
        ));
    }
    Ok(url)
}

/// step's MySQL DSN as a `mysql://` URL.
fn mysql_url(dsn: &MysqlDsn, database: Option<&str>) -> Result<String, Error> {
    let mut query = Vec::new();
    let host = match dsn.net.as_str() {
        "" | "tcp" | "tcp4" | "tcp6" => {
            let address = if dsn.address.is_empty() {
                "127.0.0.1:3306"
            } else {
                dsn.address.as_str()
            };
            host_and_port(address, 3306)?
        }
        "unix" => {
            if dsn.address.is_empty() {
                return Err(Error::Location(
                    "db.dataSource: unix() needs the socket's path: unix(/run/mysqld/mysqld.sock)"
                        .into(),
                ));
            }
            query.push(("socket".to_owned(), dsn.address.clone()));
            "localhost".to_owned()
        }
        other => {
            return Err(Error::Location(format!(
                "db.dataSource is neither a mysql:// URL nor a MySQL DSN such as \
                 user:password@tcp(host:3306)/database: network {other:?} is unknown (use \
                 tcp(host:port) or unix(/path/to/socket))"
            )));
        }
    };
    for (key, value) in &dsn.params {
        match key.as_str() {
            "tls" => {
                let mode = match value.as_str() {
                    "true" => "VERIFY_IDENTITY",
                    "skip-verify" => "REQUIRED",
                    "preferred" => "PREFERRED",
                    "false" => "DISABLED",
                    _ => {
                        return Err(Error::Location(format!(
                            "db.dataSource: MySQL parameter tls={value:?} is not supported: use \
                             true, skip-verify, preferred or false"
                        )));
                    }
                };
                query.push(("ssl-mode".to_owned(), mode.to_owned()));
            }
            // The Go driver takes a list and uses the first the server knows.
            "charset" => {
                let first = value.split(',').next().unwrap_or_default();
                query.push(("charset".to_owned(), first.to_owned()));
            }
            "collation" => query.push(("collation".to_owned(), value.clone())),
            inert if MYSQL_INERT_PARAMS.contains(&inert) => {}
            other => {
                return Err(Error::Location(format!(
                    "db.dataSource: MySQL parameter {other:?} is not supported (supported: tls, \
                     charset, collation, {})",
                    MYSQL_INERT_PARAMS.join(", ")
                )));
            }
        }
    }
    let database = database.unwrap_or(&dsn.database);
    Ok(format!(
        "mysql://{}{host}/{}{}",
        user_info(&dsn.user, dsn.password.as_deref()),
        encode(database),
        query_string(&query)
    ))
}

/// PostgreSQL's key=value string as a `postgresql://` URL.
fn postgres_url(pairs: &PgKeyValues, database: Option<&str>) -> Result<String, Error> {
    let mut query = Vec::new();
    for (key, _) in &pairs.0 {
        let known = matches!(
            key.as_str(),
            "host" | "hostaddr" | "port" | "user" | "password" | "dbname"
        ) || PG_QUERY_KEYS.contains(&key.as_str());
        if !known {
            return Err(Error::Location(format!(
                "db.dataSource: PostgreSQL setting {key:?} is not supported (supported: host, \
                 hostaddr, port, user, password, dbname, {})",
                PG_QUERY_KEYS.join(", ")
            )));
        }
    }
    for key in PG_QUERY_KEYS {
        if let Some(value) = pairs.get(key) {
            query.push(((*key).to_owned(), value.to_owned()));
        }
    }
    let host = pairs.get("hostaddr").or(pairs.get("host")).unwrap_or("");
    if host.contains(',') {
        return Err(Error::Location(
            "db.dataSource: several PostgreSQL hosts are not supported: name one host".into(),
        ));
    }
    let host = if host.starts_with('/') {
        // A Unix socket directory.
        query.push(("host".to_owned(), host.to_owned()));
        "localhost".to_owned()
    } else if host.is_empty() {
        "localhost".to_owned()
    } else if host.contains(':') {
        format!("[{}]", host.trim_start_matches('[').trim_end_matches(']'))
    } else {
        host.to_owned()
    };
    let port = match pairs.get("port") {
        Some(port) => {
            let number: u16 = port.parse().map_err(|_| {
                Error::Location(format!(
                    "db.dataSource: PostgreSQL port {port:?} is not a port number"
                ))
            })?;
            format!(":{number}")
        }
        None => String::new(),
    };
    let user = pairs.get("user").unwrap_or("");
    let database = database.or(pairs.get("dbname")).unwrap_or("");
    Ok(format!(
        "postgresql://{}{host}{port}/{}{}",
        user_info(user, pairs.get("password")),
        encode(database),
        query_string(&query)
    ))
}

/// `host:port` (or `[v6]:port`, or a bare host) for a URL, with the port checked.
fn host_and_port(address: &str, default_port: u16) -> Result<String, Error> {
    let bad = || {
        Error::Location(format!(
            "db.dataSource: {address:?} is not host:port (write an IPv6 address as [::1]:3306)"
        ))
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{host}]"), port)
    } else {
        match address.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (address.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let port: u16 = match port {
        Some(port) => port.parse().map_err(|_| bad())?,
        None => default_port,
    };
    Ok(format!("{host}:{port}"))
}

/// `user[:password]@`, percent-encoded; empty without a user or password.
fn user_info(user: &str, password: Option<&str>) -> String {
    match (user, password) {
        ("", None) => String::new(),
        (user, None) => format!("{}@", encode(user)),
        (user, Some(password)) => format!("{}:{}@", encode(user), encode(password)),
    }
}

fn query_string(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters; sqlx decodes user,
/// password, database and query values.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `url` with its path (the database) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{scheme}://{authority}/{}{query}", encode(database))
}

/// The database part of a URL's path (empty when there is none).
fn url_database(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some(slash) = rest.find(['/', '?']) else {
        return "";
    };
    let path = &rest[slash..];
    let path = path.split('?').next().unwrap_or_default();
    path.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(dialect: Dialect, text: &str, database: Option<&str>) -> Result<String, String> {
        server_url(dialect, &DataSource::new(text), database).map_err(|e| e.to_string())
    }

    #[test]
    fn step_mysql_data_sources_become_urls() {
        for (text, database, expected) in [
            (
                "root@tcp(127.0.0.1:3306)/",
                Some("stepca"),
                "mysql://root@127.0.0.1:3306/stepca",
            ),
            (
                "ca:p@ss:w/rd@tcp(db.example)/old",
                Some("stepca"),
                "mysql://ca:p%40ss%3Aw%2Frd@db.example:3306/stepca",
            ),
            (
                "ca:pw@tcp([::1]:3307)/stepca?tls=skip-verify&parseTime=true&charset=utf8mb4,utf8",
                None,
                "mysql://ca:pw@[::1]:3307/stepca?ssl-mode=REQUIRED&charset=utf8mb4",
            ),
            (
                "ca@unix(/run/mysqld/mysqld.sock)/stepca",
                None,
                "mysql://ca@localhost/stepca?socket=%2Frun%2Fmysqld%2Fmysqld.sock",
            ),
            ("/stepca", None, "mysql://127.0.0.1:3306/stepca"),
            // A URL keeps its form; "database" replaces its path as it does for a DSN.
            (
                "mysql://root@127.0.0.1:3306/old?ssl-mode=DISABLED",
                Some("new"),
                "mysql://root@127.0.0.1:3306/new?ssl-mode=DISABLED",
            ),
            ("mysql://root@h/ca", None, "mysql://root@h/ca"),
        ] {
            assert_eq!(
                url(Dialect::MySql, text, database).unwrap(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn postgres_key_values_become_urls() {
        for (text, database, expected) in [
            (
                "host=db.example port=5433 user=ca password='s p' dbname=old sslmode=require",
                Some("stepca"),
                "postgresql://ca:s%20p@db.example:5433/stepca?sslmode=require",
            ),
            (
                "user=postgres dbname=step_ca",
                None,
                "postgresql://postgres@localhost/step_ca",
            ),
            (
                "host=/var/run/postgresql user=ca dbname=ca",
                None,
                "postgresql://ca@localhost/ca?host=%2Fvar%2Frun%2Fpostgresql",
            ),
            ("hostaddr=::1 dbname=ca", None, "postgresql://[::1]/ca"),
            (
                "postgres://u@h/x?sslmode=disable",
                Some("y"),
                "postgres://u@h/y?sslmode=disable",
            ),
        ] {
            assert_eq!(
                url(Dialect::Postgres, text, database).unwrap(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn what_cannot_be_carried_over_is_refused_naming_the_field() {
        for (dialect, text, database, expected) in [
            (
                Dialect::MySql,
                "root:hunter2@tcp(127.0.0.1:3306)",
                None,
                "db.dataSource: not a MySQL data source (no '/'",
            ),
            (
                Dialect::MySql,
                "root:hunter2@tcp(127.0.0.1:3306)/",
                None,
                "db.database: no MySQL database is named",
            ),
            (
                Dialect::MySql,
                "root:hunter2@udp(h)/x",
                None,
                "network \"udp\" is unknown",
            ),
            (
                Dialect::MySql,
                "root:hunter2@tcp(h:port)/x",
                None,
                "db.dataSource: \"h:port\" is not host:port",
            ),
            (
                Dialect::MySql,
                "root:hunter2@tcp(h)/x?tls=maybe",
                None,
                "tls=\"maybe\"",
            ),
            (
                Dialect::MySql,
                "root:hunter2@tcp(h)/x?multiStatements=true",
                None,
                "\"multiStatements\" is not supported",
            ),
            (
                Dialect::MySql,
                "postgres://root:hunter2@h/x",
                None,
                "db.dataSource \"postgres://root:***@h/x\" is not a mysql URL",
            ),
            (
                Dialect::Postgres,
                "host=h password=hunter2 target_session_attrs=any",
                None,
                "setting \"target_session_attrs\" is not supported",
            ),
            (
                Dialect::Postgres,
                "host=h password='hunter2",
                None,
                "db.dataSource: not a PostgreSQL connection string",
            ),
            (
                Dialect::Postgres,
                "host=h,g password=hunter2",
                None,
                "several PostgreSQL hosts",
            ),
            (
                Dialect::Postgres,
                "host=h port=99999 password=hunter2",
                None,
                "port \"99999\"",
            ),
            (
                Dialect::Postgres,
                "root:hunter2@tcp(h)/x",
                None,
                "db.dataSource: not a PostgreSQL connection string",
            ),
        ] {
            let err = url(dialect, text, database).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{text}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
