//! ca.json's `db.dataSource`, in every spelling step-ca accepts: a path (SQLite, badger), a URL
//! (`mysql://…`, `postgres://…`), the Go MySQL driver's DSN that step documents
//! (`user:pass@tcp(host:3306)/`), and PostgreSQL's `key=value` connection string.
//!
//! The text may carry a database password, so it is its own type: its `Debug` (and
//! [`DataSource::redacted`]) never shows the password, whichever spelling holds it. The parsers
//! here are the only ones; the store turns what they return into a connection URL.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What passwords are replaced with in messages.
const HIDDEN: &str = "***";

/// `db.dataSource` as written in ca.json.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataSource(String);

impl DataSource {
    pub fn new(text: impl Into<String>) -> DataSource {
        DataSource(text.into())
    }

    /// The text as written, password included: for connecting, never for messages.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the text carries a password, in any spelling.
    pub fn has_password(&self) -> bool {
        self.redacted() != self.0
    }

    /// The text with any password replaced by `***`, for logs and messages. Which spelling it is
    /// is not always certain without the database type (a path may contain `@`), so every
    /// spelling that could hold a password is redacted: a path is at worst shown partly hidden.
    pub fn redacted(&self) -> String {
        let text = self.0.as_str();
        if text.contains("://") {
            return redact_url(text);
        }
        if looks_like_key_values(text) {
            return match PgKeyValues::parse(text) {
                Ok(pairs) => pairs.redacted(),
                // Unparseable: show none of it rather than risk a password.
                Err(_) => HIDDEN.to_owned(),
            };
        }
        match MysqlDsn::password_span(text) {
            Some((start, end)) => format!("{}{HIDDEN}{}", &text[..start], &text[end..]),
            None => text.to_owned(),
        }
    }
}

impl fmt::Debug for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// `url` with the password of its user info replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:{HIDDEN}@{host}{path}"),
            None => url.to_owned(),
        },
        None => {
            // A password can also be a query parameter (`?password=…`).
            redact_query_password(url)
        }
    }
}

fn redact_query_password(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={HIDDEN}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// Whether `text` starts like `key=value` (PostgreSQL's connection string) rather than a path or
/// a DSN: a word of letters and underscores, then `=`.
fn looks_like_key_values(text: &str) -> bool {
    let trimmed = text.trim_start();
    let key_end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    key_end > 0 && trimmed[key_end..].trim_start().starts_with('=')
}

/// The Go MySQL driver's DSN, as step-ca documents it:
/// `[user[:password]@][net[(address)]]/dbname[?param=value&…]`.
///
/// Parsed the way the driver parses it (the last `/` ends the address part, the last `@` before
/// it ends the user info, the first `:` splits user and password), so that a password holding
/// `@`, `:` or `/` means here what it means to step-ca.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlDsn {
    pub user: String,
    pub password: Option<String>,
    /// `tcp`, `unix`, or empty (the driver then uses `tcp` to 127.0.0.1:3306).
    pub net: String,
    /// `host:port`, `host`, `[::1]:3306`, or a socket path; empty for the default.
    pub address: String,
    pub database: String,
    /// The query parameters, in order, undecoded.
    pub params: Vec<(String, String)>,
}

impl fmt::Debug for MysqlDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlDsn")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| HIDDEN))
            .field("net", &self.net)
            .field("address", &self.address)
            .field("database", &self.database)
            .field("params", &self.params)
            .finish()
    }
}

impl MysqlDsn {
    /// Parses `text`. Errors say what is wrong without repeating the text (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<MysqlDsn> {
        let bad = |why: &str| {
            Error::Config(format!(
                "not a MySQL data source ({why}): expected user[:password]@tcp(host:port)/[database] \
                 or mysql://user[:password]@host[:port]/database"
            ))
        };
        let slash = text
            .rfind('/')
            .ok_or_else(|| bad("no '/' before the database name"))?;
        let (left, right) = (&text[..slash], &text[slash + 1..]);
        let (user_info, net_address) = match left.rfind('@') {
            Some(at) => (Some(&left[..at]), &left[at + 1..]),
            None => (None, left),
        };
        let (user, password) = match user_info {
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
                None => (info.to_owned(), None),
            },
            None => (String::new(), None),
        };
        let (net, address) = match net_address.find('(') {
            Some(open) => {
                let inner = net_address[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| bad("the address must end with ')': tcp(host:port)"))?;
                if inner.contains(['(', ')']) {
                    return Err(bad("unbalanced parentheses around the address"));
                }
                (net_address[..open].to_owned(), inner.to_owned())
            }
            None => {
                if net_address.contains(')') {
                    return Err(bad("')' without '(' in the address"));
                }
                (net_address.to_owned(), String::new())
            }
        };
        let (database, query) = match right.split_once('?') {
            Some((database, query)) => (database, Some(query)),
            None => (right, None),
        };
        let mut params = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("a parameter without '=' after '?'"))?;
            params.push((key.to_owned(), value.to_owned()));
        }
        Ok(MysqlDsn {
            user,
            password,
            net,
            address,
            database: database.to_owned(),
            params,
        })
    }

    /// Byte range of the password in `text`, found as [`MysqlDsn::parse`] finds it.
    fn password_span(text: &str) -> Option<(usize, usize)> {
        let slash = text.rfind('/')?;
        let at = text[..slash].rfind('@')?;
        let colon = text[..at].find(':')?;
        Some((colon + 1, at))
    }
}

/// PostgreSQL's `key=value` connection string (libpq's, which step-ca's driver reads):
/// `host=db port=5432 user=ca password='s p' dbname=ca sslmode=require`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgKeyValues(pub Vec<(String, String)>);

impl fmt::Debug for PgKeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl PgKeyValues {
    /// Parses `text`: pairs separated by whitespace, `=` optionally surrounded by spaces, values
    /// optionally in single quotes, `\` escaping the next character. Errors name the key at
    /// fault, never a value.
    pub fn parse(text: &str) -> Result<PgKeyValues> {
        let bad = |why: String| {
            Error::Config(format!(
                "not a PostgreSQL connection string ({why}): expected key=value pairs such as \
                 host=db.example user=ca dbname=ca, or postgresql://user[:password]@host/database"
            ))
        };
        let mut pairs = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                key.push(c);
            }
            if key.is_empty() {
                return Err(bad("a setting must start with its name".into()));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('=') {
                return Err(bad(format!("no '=' after {key:?}")));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => return Err(bad(format!("the value of {key:?} ends in '\\'"))),
                        },
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => {
                            return Err(bad(format!("the quoted value of {key:?} is not closed")));
                        }
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err(bad(format!("the value of {key:?} ends in '\\'"))),
                        }
                    } else if c == '\'' {
                        return Err(bad(format!("a quote inside the value of {key:?}")));
                    } else {
                        value.push(c);
                    }
                }
            }
            pairs.push((key, value));
        }
        if pairs.is_empty() {
            return Err(bad("it is empty".into()));
        }
        Ok(PgKeyValues(pairs))
    }

    /// The last value given for `key` (libpq lets a later one win).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        self.0
            .iter()
            .map(|(key, value)| {
                if key == "password" {
                    format!("{key}={HIDDEN}")
                } else if value.is_empty() || value.contains([' ', '\'', '\\']) {
                    format!(
                        "{key}='{}'",
                        value.replace('\\', "\\\\").replace('\'', "\\'")
                    )
                } else {
                    format!("{key}={value}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_mysql_dsns_parse_as_the_go_driver_reads_them() {
        let dsn = MysqlDsn::parse("root@tcp(127.0.0.1:3306)/").unwrap();
        assert_eq!(dsn.user, "root");
        assert_eq!(dsn.password, None);
        assert_eq!(
            (dsn.net.as_str(), dsn.address.as_str()),
            ("tcp", "127.0.0.1:3306")
        );
        assert_eq!(dsn.database, "");
        let dsn =
            MysqlDsn::parse("ca:p@ss:w/rd@tcp([::1]:3307)/stepca?tls=true&parseTime=true").unwrap();
        assert_eq!(dsn.user, "ca");
        assert_eq!(dsn.password.as_deref(), Some("p@ss:w/rd"));
        assert_eq!(dsn.address, "[::1]:3307");
        assert_eq!(dsn.database, "stepca");
        assert_eq!(
            dsn.params,
            vec![
                ("tls".to_owned(), "true".to_owned()),
                ("parseTime".to_owned(), "true".to_owned())
            ]
        );
        let dsn = MysqlDsn::parse("user@unix(/run/mysqld/mysqld.sock)/step_ca").unwrap();
        assert_eq!(
            (dsn.net.as_str(), dsn.address.as_str()),
            ("unix", "/run/mysqld/mysqld.sock")
        );
        let dsn = MysqlDsn::parse("/ca").unwrap();
        assert_eq!((dsn.user.as_str(), dsn.net.as_str()), ("", ""));
        assert!(
            !format!("{:?}", MysqlDsn::parse("u:hunter2@tcp(h)/").unwrap()).contains("hunter2")
        );
    }

    #[test]
    fn malformed_mysql_dsns_say_why_without_the_password() {
        for (text, why) in [
            ("root:hunter2@tcp(127.0.0.1:3306)", "no '/'"),
            ("root:hunter2@tcp(127.0.0.1:3306/", "must end with ')'"),
            ("root:hunter2@tcp)127.0.0.1(/", "must end with ')'"),
            ("root:hunter2@tcp127.0.0.1)/", "')' without '('"),
            ("root:hunter2@tcp(h)/db?tls", "without '='"),
        ] {
            let err = MysqlDsn::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{text}: {err}");
        }
    }

    #[test]
    fn postgres_key_values_parse_with_quotes_and_escapes() {
        let pairs = PgKeyValues::parse(" host=db.example port = 5432 password='it''s' user=ca ")
            .unwrap_err();
        assert!(
            pairs.to_string().contains("a setting must start"),
            "{pairs}"
        );
        let pairs = PgKeyValues::parse(
            r"host=db.example port = 5432 password='it\'s a secret' user=ca dbname=a\ b",
        )
        .unwrap();
        assert_eq!(pairs.get("host"), Some("db.example"));
        assert_eq!(pairs.get("port"), Some("5432"));
        assert_eq!(pairs.get("password"), Some("it's a secret"));
        assert_eq!(pairs.get("dbname"), Some("a b"));
        assert_eq!(
            pairs.redacted(),
            "host=db.example port=5432 password=*** user=ca dbname='a b'"
        );
        for (text, why) in [
            ("host=db password='open", "\"password\" is not closed"),
            ("host", "no '=' after \"host\""),
            ("=x", "must start with its name"),
            ("", "it is empty"),
            ("password=a'b", "a quote inside the value of \"password\""),
        ] {
            let err = PgKeyValues::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn passwords_are_redacted_in_every_spelling() {
        for (text, shown) in [
            (
                "postgres://mayfly:s3cret@db.example:5432/ca?sslmode=require",
                "postgres://mayfly:***@db.example:5432/ca?sslmode=require",
            ),
            (
                "mysql://root:p@ss:word@127.0.0.1/ca",
                "mysql://root:***@127.0.0.1/ca",
            ),
            (
                "postgres://db.example/ca?user=u&password=s3cret",
                "postgres://db.example/ca?user=u&password=***",
            ),
            ("mysql://127.0.0.1/ca", "mysql://127.0.0.1/ca"),
            (
                "root:s3cret@tcp(127.0.0.1:3306)/",
                "root:***@tcp(127.0.0.1:3306)/",
            ),
            ("root@tcp(127.0.0.1:3306)/", "root@tcp(127.0.0.1:3306)/"),
            (
                "host=h user=u password=s3cret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            ("host=h password='s3cret", "***"),
            ("/var/lib/step/db", "/var/lib/step/db"),
            ("db/mayfly.db", "db/mayfly.db"),
        ] {
            let source = DataSource::new(text);
            assert_eq!(source.redacted(), shown, "{text}");
            assert_eq!(format!("{source:?}"), format!("{shown:?}"), "{text}");
            assert_eq!(
                source.has_password(),
                text.contains("s3cret") || text.contains("p@ss"),
                "{text}"
            );
        }
    }
}
