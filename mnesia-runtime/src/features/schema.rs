//! Creating, inspecting and deleting a database directory (Mnesia's schema functions).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::disk::files::io_error;
use crate::disk::schema::{self, FORMAT, SchemaFile};
use crate::disk::{self};
use crate::error::{Error, Result};

/// The schema of a database directory: which tables it holds and how they are defined.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mnesia-doc-schema-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// mnesia::Schema::create(&dir)?;
/// assert!(mnesia::Schema::exists(&dir)?);
/// assert!(matches!(mnesia::Schema::create(&dir), Err(mnesia::Error::SchemaExists { .. })));
/// let info = mnesia::Schema::info(&dir)?;
/// assert!(info.tables.is_empty() && !info.running);
/// mnesia::Schema::delete(&dir)?;
/// assert!(!mnesia::Schema::exists(&dir)?);
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Debug)]
pub struct Schema {
    _private: (),
}

/// What [`Schema::info`] tells.
///
/// ```
/// let info = mnesia::SchemaInfo { directory: "data".into(), nodes: vec![], tables: vec![], version: 1, running: false };
/// assert_eq!(info.version, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaInfo {
    /// The directory.
    pub directory: PathBuf,
    /// The nodes holding the schema.
    pub nodes: Vec<String>,
    /// The tables, by name.
    pub tables: Vec<String>,
    /// The schema's format version.
    pub version: u32,
    /// Whether a process has the database open now.
    pub running: bool,
}

impl Schema {
    /// Creates an empty schema in `dir` (created if missing). Fails with
    /// [`Error::SchemaExists`] if there is one already: it is never overwritten.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("mnesia-doc-create-{}", std::process::id()));
    /// # let _ = mnesia::Schema::delete(&dir);
    /// mnesia::Schema::create(&dir)?;
    /// # mnesia::Schema::delete(&dir)?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn create(dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if schema::path(dir).exists() {
            return Err(Error::SchemaExists { dir: dir.to_path_buf() });
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let file = SchemaFile {
            format: FORMAT,
            node: "local@localhost".into(),
            next_table_id: 1,
            tables: Vec::new(),
        };
        schema::store(dir, &file)
    }

    /// Whether `dir` holds a readable schema.
    ///
    /// ```
    /// assert!(!mnesia::Schema::exists("/nonexistent/mnesia")?);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn exists(dir: impl AsRef<Path>) -> Result<bool> {
        match schema::load(dir.as_ref()) {
            Ok(_) => Ok(true),
            Err(Error::NoSchema { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Facts about the schema in `dir`.
    ///
    /// ```
    /// assert!(matches!(mnesia::Schema::info("/nonexistent/mnesia"), Err(mnesia::Error::NoSchema { .. })));
    /// ```
    pub fn info(dir: impl AsRef<Path>) -> Result<SchemaInfo> {
        let dir = dir.as_ref();
        let s = disk::current_schema(dir)?;
        Ok(SchemaInfo {
            directory: dir.to_path_buf(),
            nodes: vec![s.node],
            tables: s.tables.into_iter().map(|t| t.name).collect(),
            version: s.format,
            running: disk::is_running(dir),
        })
    }

    /// Deletes the schema and every table stored in `dir` (the files this crate wrote; the
    /// directory itself if it is then empty). Refused while a process has it open.
    ///
    /// ```
    /// assert!(mnesia::Schema::delete("/nonexistent/mnesia").is_err());
    /// ```
    pub fn delete(dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        schema::load(dir)?;
        if disk::is_running(dir) {
            return Err(Error::Locked { dir: dir.to_path_buf() });
        }
        for e in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let e = e.map_err(|e| io_error(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name == "schema.json"
                || name == "checkpoint.json"
                || name == "LOCK"
                || name == crate::disk::only::FILE
                || name.ends_with(".wal")
                || name.ends_with(".snap")
                || name.ends_with(".tmp");
            if ours {
                std::fs::remove_file(e.path()).map_err(|err| io_error(&e.path(), err))?;
            }
        }
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }
}
