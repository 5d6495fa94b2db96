//! Tables with copies on some nodes only (`create_table` with a list of nodes): a node
//! without a table's records forwards a read outside a transaction to a member holding
//! them ([`Request::Read`]), and a node whose copy waits to be filled (it loaded a snapshot
//! made by a node without the records) asks a member holding them for an image of the
//! table ([`Request::Image`]).

use std::sync::Arc;
use std::time::Duration;

use mnesia_runtime::{Database, Error, Result};

use crate::net::{Request, Response};
use crate::node::Shared;

/// How long a member may take to answer a forwarded read.
const READ_WAIT: Duration = Duration::from_secs(5);

/// How long a member may take to write and send a table's image.
const IMAGE_WAIT: Duration = Duration::from_secs(60);

/// How often a node looks for copies waiting to be filled (and filled ones to tell of).
const FILL_EVERY: Duration = Duration::from_millis(200);

impl Shared {
    /// The records of the key `key` of table `table` (both encoded), read on a member
    /// up that holds the table's records (the one that answered last first, then each in
    /// turn); [`Error::NotHere`] when none answers with them.
    pub(crate) async fn read_elsewhere(
        self: &Arc<Self>,
        table: String,
        key: Vec<u8>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut members = self.other_members();
        let last = self.read_from.lock().get(&table).copied();
        members.sort_by_key(|(member, _)| Some(*member) != last);
        let request = Request::Read { table, key };
        for (member, addr) in members {
            match self.ask_member(&self.read_links, member, addr, &request, READ_WAIT).await {
                Some(Response::Read(Ok(found))) => {
                    if let Request::Read { table, .. } = &request
                        && last != Some(member)
                    {
                        self.read_from.lock().insert(table.clone(), member);
                    }
                    return Ok(found);
                }
                Some(Response::Read(Err(why))) => {
                    tracing::debug!(target: "mnesia::cluster", member, %why, "a forwarded read not answered there");
                }
                _ => {}
            }
        }
        let Request::Read { table, .. } = request else { unreachable!("built above") };
        Err(Error::NotHere { table, nodes: Vec::new() })
    }

    /// An image of table `table` of place `at` of the order or a later one, written by a
    /// member up that holds the table's records (each asked in turn), if one gives it.
    async fn image_elsewhere(self: &Arc<Self>, table: &str, at: u64) -> Option<Vec<u8>> {
        let request = Request::Image { table: table.to_owned(), at };
        for (member, addr) in self.other_members() {
            match self.ask_member(&self.image_links, member, addr, &request, IMAGE_WAIT).await {
                Some(Response::Image(Ok(image))) => return Some(image),
                Some(Response::Image(Err(why))) => {
                    tracing::debug!(target: "mnesia::cluster", member, %why, table, "no image of the table there");
                }
                _ => {}
            }
        }
        None
    }

    /// `request`'s answer from member `member` (at `addr`), over the connection of `links`
    /// kept to it; `None` when it does not come within `wait`.
    async fn ask_member(
        &self,
        links: &crate::net::MemberLinks,
        member: u64,
        addr: String,
        request: &Request,
        wait: Duration,
    ) -> Option<Response> {
        let link = links.to(member, &addr);
        let mut peer = tokio::time::timeout(wait, link.lock()).await.ok()?;
        let peer = peer.get_or_insert_with(|| self.dialer.peer(member, addr));
        // (Not told to the liveness: a slow answer here is no sign of a node down.)
        peer.exchange(request, wait).await.ok()
    }
}

/// The answer to a [`Request::Read`] of another member.
pub(crate) fn answer_read(db: &Database, table: &str, key: &[u8]) -> Response {
    Response::Read(tokio::task::block_in_place(|| db.read_encoded(table, key)).map_err(|e| e.to_string()))
}

/// The answer to a [`Request::Image`] of another member at place `at`: once this node has
/// applied as far (within half the asker's wait), the table's image.
pub(crate) async fn answer_image(db: &Database, table: &str, at: u64) -> Response {
    let deadline = tokio::time::Instant::now() + IMAGE_WAIT / 2;
    while db.applied_index() < at {
        if tokio::time::Instant::now() >= deadline {
            return Response::Image(Err(format!("this node has not reached place {at} of the order")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut image = Vec::new();
    let written = tokio::task::block_in_place(|| db.write_table_image(table, &mut image));
    Response::Image(written.map(|_| image).map_err(|e| e.to_string()))
}

/// Fills, for as long as the node runs, each copy of `db` that waits to be filled, from an
/// image another member writes; and tells the others, through the log, of the copies
/// given to this node that are filled.
pub(crate) async fn fill_copies(shared: Arc<Shared>, db: Database) {
    let mut tick = tokio::time::interval(FILL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let confirming = db.clone();
        match tokio::task::spawn_blocking(move || confirming.confirm_filled_copies()).await {
            Ok(Ok(told)) if !told.is_empty() => {
                tracing::info!(target: "mnesia::cluster", ?told, "copies given to this node are filled");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(target: "mnesia::cluster", error = %e, "filled copies not told yet")
            }
            Err(_) => return,
        }
        for (table, at) in db.unfilled_tables() {
            let Some(image) = shared.image_elsewhere(&table, at).await else { continue };
            let filling = db.clone();
            match tokio::task::spawn_blocking(move || filling.fill_table(image)).await {
                Ok(Ok(true)) => {
                    tracing::info!(target: "mnesia::cluster", table, "a copy's image taken from another member")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(target: "mnesia::cluster", table, error = %e, "a table's image refused")
                }
                // The runtime is shutting down.
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_answers_reads_and_images_of_the_tables_it_holds() {
        use mnesia::prelude::*;
        #[derive(Table, Clone, Debug, Serialize, Deserialize)]
        struct Spot {
            #[key]
            id: u32,
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        let db = Database::in_memory().expect("db");
        db.create_table::<Spot>(TableOptions::new()).expect("table");
        db.scope(|| Spot::write(Spot { id: 3 })).expect("write");
        rt.block_on(async {
            let key = postcard::to_allocvec(&3u32).expect("key");
            assert!(matches!(answer_read(&db, "spot", &key), Response::Read(Ok(found)) if found.len() == 1));
            assert!(matches!(answer_read(&db, "nope", &key), Response::Read(Err(_))));
            assert!(
                matches!(answer_image(&db, "spot", 0).await, Response::Image(Ok(image)) if !image.is_empty())
            );
            assert!(matches!(answer_image(&db, "nope", 0).await, Response::Image(Err(_))));
        });
    }
}
