//! The schema migrations, embedded by `src/build.rs`, as sqlx migrations.
//!
//! File names follow sqlx's convention, `<version>_<description>.sql`; a file starting with
//! `-- no-transaction` runs outside a transaction. The checksum sqlx stores for each applied
//! migration is computed from the same text as before (`Migration::new`), so databases migrated
//! by earlier builds (which used `sqlx::migrate!`) see no change.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::Backend;

/// One file of `migrations/<backend>/`, as the build script embedded it.
#[derive(Debug)]
pub(super) struct EmbeddedFile {
    name: &'static str,
    sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrations of one backend, in version order.
pub(super) async fn migrator(backend: Backend) -> Result<Migrator, sqlx::migrate::MigrateError> {
    let files = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::new(Embedded(files)).await
}

#[derive(Debug)]
struct Embedded(&'static [EmbeddedFile]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            let mut migrations = self.0.iter().map(EmbeddedFile::migration).collect::<Result<Vec<_>, _>>()?;
            migrations.sort_by_key(|m| m.version);
            Ok(migrations)
        })
    }
}

impl EmbeddedFile {
    fn migration(&self) -> Result<Migration, BoxDynError> {
        let (version, rest) = self
            .name
            .split_once('_')
            .ok_or_else(|| format!("migration file {:?} is not named <version>_<description>.sql", self.name))?;
        let version: i64 = version
            .parse()
            .map_err(|_| format!("migration file {:?} does not start with an integer version", self.name))?;
        let migration_type = MigrationType::from_filename(rest);
        let description = rest.trim_end_matches(migration_type.suffix()).replace('_', " ");
        Ok(Migration::new(
            version,
            Cow::Owned(description),
            migration_type,
            Cow::Borrowed(self.sql),
            self.sql.starts_with("-- no-transaction"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_file_becomes_a_migration_in_version_order() {
        for (backend, files) in [(Backend::Sqlite, SQLITE), (Backend::Postgres, POSTGRES)] {
            let migrator = migrator(backend).await.unwrap();
            let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
            assert_eq!(versions.len(), files.len());
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
            let first = migrator.iter().next().unwrap();
            assert_eq!((first.version, first.description.as_ref()), (1, "foundation"));
            assert_eq!(first.migration_type, MigrationType::Simple);
        }
    }

    #[test]
    fn a_misnamed_file_is_refused_by_name() {
        let file = EmbeddedFile { name: "first.sql", sql: "" };
        let error = file.migration().unwrap_err().to_string();
        assert!(error.contains("first.sql"), "{error}");
    }
}
