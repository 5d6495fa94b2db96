//! System information (Mnesia's `system_info`): what the database holds and what it has
//! done, as a plain struct that serializes and prints.

use crate::base::activity::Activity;
use crate::base::stats::{Stat, Stats};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

use crate::schema::record::TableInfo;

/// The commit log of a database with a directory.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mnesia-doc-loginfo-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// mnesia::Schema::create(&dir)?;
/// let db = mnesia::Database::open(mnesia::Config::default().dir(&dir))?;
/// let log = db.system_info().log.expect("a database on disc has a log");
/// assert!(log.bytes_since_checkpoint < log.checkpoint_after_bytes);
/// # db.close()?; drop(db); mnesia::Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LogInfo {
    /// Bytes of log since the last checkpoint (what the next open replays), the log the
    /// directory held when it was opened included.
    pub bytes_since_checkpoint: u64,
    /// The size past which a checkpoint runs (`Config::checkpoint_after_bytes`).
    pub checkpoint_after_bytes: u64,
    /// When a commit is durable (`Config::durability`).
    pub durability: String,
}

/// Facts about a running database (Mnesia's `system_info`).
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32 }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     Item::create_table(TableOptions::new())?;
///     Item::write(Item { id: 1 })?;
///     let info = mnesia::system_info()?;
///     assert_eq!(info.tables.len(), 1);
///     assert!(info.commits >= 1);
///     assert!(info.to_string().contains("item"));
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct SystemInfo {
    /// The version of this crate.
    pub version: String,
    /// This node's name (`Config::node_name`).
    pub node: String,
    /// The nodes running the database now: this one, and in a cluster the members that
    /// answer it. In a cluster every member, this one first, is named `id@address`.
    pub running_nodes: Vec<String>,
    /// The nodes the database knows: this one, and in a cluster every member (named as in
    /// `running_nodes`).
    pub known_nodes: Vec<String>,
    /// The database's directory, if it has one.
    pub directory: Option<PathBuf>,
    /// Every table, by name.
    pub tables: Vec<TableInfo>,
    /// The sequence number of the last commit.
    pub last_commit: u64,
    /// Transactions (and dirty operations) committed since the database opened.
    pub commits: u64,
    /// Transactions that ended without committing.
    pub aborts: u64,
    /// Times a transaction ran again after a conflict.
    pub retries: u64,
    /// Times a transaction that kept losing ran an attempt with priority (see
    /// [`Config::escalate_after`](crate::Config::escalate_after)).
    pub escalations: u64,
    /// Transactions running now.
    pub running_transactions: u64,
    /// The commit log, for a database with a directory.
    pub log: Option<LogInfo>,
    /// The cluster, for a cluster node: the leader, the term, the last entry applied, the
    /// members and which of them answer.
    pub cluster: Option<crate::engine::system::ClusterInfo>,
}

impl SystemInfo {
    pub(crate) fn new(
        node: String,
        directory: Option<PathBuf>,
        tables: Vec<TableInfo>,
        last_commit: u64,
        stats: &Stats,
        log: Option<LogInfo>,
        cluster: Option<crate::engine::system::ClusterInfo>,
    ) -> SystemInfo {
        let (commits, aborts, running_transactions) = stats.outcomes();
        // (In a cluster, this node named as the others are.)
        let me = cluster.as_ref().and_then(|c| c.members.iter().find(|m| m.id == c.node));
        let me = me.map_or_else(|| node.clone(), ToString::to_string);
        let (mut running_nodes, mut known_nodes) = (vec![me.clone()], vec![me]);
        if let Some(c) = &cluster {
            for m in c.members.iter().filter(|m| m.id != c.node) {
                known_nodes.push(m.to_string());
                if m.up {
                    running_nodes.push(m.to_string());
                }
            }
        }
        SystemInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            running_nodes,
            known_nodes,
            node,
            directory,
            tables,
            last_commit,
            commits,
            aborts,
            retries: stats.total(Stat::Retry),
            escalations: stats.total(Stat::Escalation),
            running_transactions,
            log,
            cluster,
        }
    }
}

impl fmt::Display for SystemInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mnesia {} on {}", self.version, self.node)?;
        // (In a cluster, the name the members know this node by, as the lists below.)
        match self.running_nodes.first().filter(|n| self.cluster.is_some() && **n != self.node) {
            Some(member) => writeln!(f, " (cluster member {member})")?,
            None => writeln!(f)?,
        }
        match &self.directory {
            Some(d) => writeln!(f, "directory:    {}", d.display())?,
            None => writeln!(f, "directory:    none (in memory)")?,
        }
        writeln!(f, "nodes:        running {:?}, known {:?}", self.running_nodes, self.known_nodes)?;
        if let Some(c) = &self.cluster {
            let leader = c.leader.map_or("none".to_owned(), |l| l.to_string());
            writeln!(
                f,
                "cluster:      node {}, leader {leader}, term {}, last applied {}",
                c.node, c.term, c.last_applied
            )?;
        }
        writeln!(
            f,
            "transactions: {} committed, {} aborted, {} retries, {} escalated, {} running; last commit {}",
            self.commits,
            self.aborts,
            self.retries,
            self.escalations,
            self.running_transactions,
            self.last_commit
        )?;
        if let Some(log) = &self.log {
            writeln!(
                f,
                "log:          {} bytes since the last checkpoint (checkpoint at {}), durability {}",
                log.bytes_since_checkpoint, log.checkpoint_after_bytes, log.durability
            )?;
        }
        writeln!(f, "tables:       {}", self.tables.len())?;
        for t in &self.tables {
            write!(f, "  {}", t)?;
        }
        Ok(())
    }
}

impl fmt::Display for TableInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}): {} records, {} bytes; key {}",
            self.name, self.table_type, self.storage_type, self.size, self.memory, self.key
        )?;
        if self.auto_increment {
            write!(f, " (auto-increment, at {})", self.counter)?;
        }
        if self.local_content {
            write!(f, "; local content")?;
        }
        if !self.nodes.is_empty() {
            write!(f, "; copies on {}", self.nodes.join(", "))?;
        }
        if !self.disc_copies.is_empty() {
            write!(f, " (on disc: {})", self.disc_copies.join(", "))?;
        }
        if !self.filling.is_empty() {
            write!(f, " ({} filling)", self.filling.join(", "))?;
        }
        if !self.held {
            write!(f, " (none here)")?;
        }
        if let Some(bytes) = self.disk_bytes {
            write!(f, "; {bytes} bytes on disc")?;
        }
        if !self.indexes.is_empty() {
            let idx: Vec<String> = self
                .indexes
                .iter()
                .map(|i| if i.unique { format!("{} (unique)", i.field) } else { i.field.clone() })
                .collect();
            write!(f, "; indexes {}", idx.join(", "))?;
        }
        if let Some(ttl) = &self.ttl_field {
            write!(f, "; ttl field {ttl}, {} records with a deadline", self.expiring)?;
            if let Some(d) = self.default_ttl {
                write!(f, ", default lifetime {d:?}")?;
            }
        }
        writeln!(f)
    }
}

impl crate::Database {
    /// What transactions have done since the database opened (see [`Activity`]). Cheap: a
    /// few sums over counters.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.activity().commits, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn activity(&self) -> Activity {
        let stats = self.stats();
        let (commits, aborts, running) = stats.outcomes();
        Activity {
            commits,
            aborts,
            retries: stats.total(crate::base::stats::Stat::Retry),
            running,
            last_commit: self.last_commit(),
            latency: stats.latencies.histogram(),
        }
    }

    /// Times every transaction from now on into [`Activity::latency`] (off by default; the
    /// observer switches it on). A timed transaction costs one more reading of the monotonic
    /// clock and an atomic add.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.record_latencies(true);
    /// db.transaction(|_| Ok::<_, mnesia::Error>(()))?;
    /// db.record_latencies(false);
    /// db.transaction(|_| Ok::<_, mnesia::Error>(()))?;
    /// assert_eq!(db.activity().latency.count(), 1);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn record_latencies(&self, on: bool) {
        self.stats().latencies.switch(on);
    }
}

impl crate::db::Database {
    /// Facts about the database: version, node, directory, tables, what transactions did,
    /// the commit log (Mnesia's `system_info`).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let info = db.system_info();
    /// assert_eq!((info.directory, info.log), (None, None));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn system_info(&self) -> crate::db::info::SystemInfo {
        let config = &self.inner.config;
        let log = self.disk().map(|d| crate::db::info::LogInfo {
            bytes_since_checkpoint: d.wal.bytes_since_roll(),
            checkpoint_after_bytes: config.checkpoint_bytes,
            durability: format!("{:?}", config.durability),
        });
        crate::db::info::SystemInfo::new(
            config.node.clone(),
            config.dir.clone(),
            self.table_infos(),
            self.last_commit(),
            &self.inner.stats,
            log,
            self.inner.system.cluster(),
        )
    }
}

impl crate::db::Database {
    /// Tells this database's system event subscribers of a change in its cluster (what the
    /// replication layer calls; see [`ClusterEvent`](crate::ClusterEvent)).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// let db = Database::in_memory()?;
    /// let events = db.subscribe_system();
    /// db.report_cluster_event(mnesia::ClusterEvent::LeaderChanged { leader: Some(1), term: 2 });
    /// assert!(events.try_recv().is_some());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn report_cluster_event(&self, event: crate::engine::system::ClusterEvent) {
        self.inner.system.publish(crate::engine::system::SystemEvent::Cluster(event));
    }

    /// Has [`Database::system_info`](crate::Database::system_info) ask `report` for the cluster this database is a node
    /// of (what the replication layer calls; `None` from it: no report now). Replaces an
    /// earlier one; [`Database::stop_reporting_cluster`](crate::Database::stop_reporting_cluster) removes it.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.report_cluster_with(|| Some(mnesia::ClusterInfo::new(1, Some(1), 1, 0, Vec::new())));
    /// assert_eq!(db.system_info().cluster.map(|c| c.leader), Some(Some(1)));
    /// db.stop_reporting_cluster();
    /// assert!(db.system_info().cluster.is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn report_cluster_with(
        &self,
        report: impl Fn() -> Option<crate::engine::system::ClusterInfo> + Send + Sync + 'static,
    ) {
        self.inner.system.report_cluster_with(Box::new(report));
    }

    /// Removes the cluster report given to [`Database::report_cluster_with`](crate::Database::report_cluster_with).
    ///
    /// ```
    /// mnesia::Database::in_memory()?.stop_reporting_cluster();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn stop_reporting_cluster(&self) {
        self.inner.system.stop_reporting_cluster();
    }
    /// Subscribes to the database's [`crate::SystemEvent`]s: tables created and dropped,
    /// checkpoints, an overloaded log.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let events = db.subscribe_system();
    /// # let _ = events;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn subscribe_system(&self) -> crate::engine::system::SystemSubscription {
        self.inner.system.add(self.inner.config.event_buffer)
    }
}

/// Facts about the current database: see [`Database::system_info`](crate::Database::system_info).
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let info = db.scope(mnesia::system_info)?;
/// assert!(info.tables.is_empty());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn system_info() -> crate::Result<SystemInfo> {
    Ok(crate::db::current()?.system_info())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_across_threads() {
        let stats = std::sync::Arc::new(Stats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.add(Stat::Start);
                        stats.add(Stat::Commit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!((stats.total(Stat::Start), stats.total(Stat::Commit)), (4000, 4000));
    }
}
