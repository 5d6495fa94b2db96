//! Tables with copies on some nodes only (`create_table` with a list of nodes): a node
//! without a table's records forwards a read outside a transaction to a member holding
//! them ([`Request::Read`]), and a node whose copy waits to be filled (it loaded a snapshot
//! made by a node without the records) asks a member holding them for an image of the
//! table ([`Request::Image`]), in parts ([`Request::ImagePart`]): the member keeps the
//! image while they are taken.

use std::sync::Arc;
use std::time::Duration;

use mnesia_runtime::{Database, Error, Result};

use crate::net::{Request, Response};
use crate::node::Shared;

/// Connections kept to each member for forwarded reads (reads sent at once to one member
/// travel on as many at once).
pub(crate) const READ_LINKS: usize = 4;

/// How long a member may take to answer a forwarded read.
const READ_WAIT: Duration = Duration::from_secs(5);

/// How long a member may take to write and send a table's image.
const IMAGE_WAIT: Duration = Duration::from_secs(60);

/// How often a node looks for copies waiting to be filled (and filled ones to tell of) ...
const FILL_EVERY: Duration = Duration::from_millis(200);

/// ... and how often it looks whether a copy began or ended its wait (at once then).
const FILL_LOOK: Duration = Duration::from_millis(10);

/// The bytes of each part of an image sent, unless told (`Options::image_parts`).
pub(crate) const IMAGE_PART: usize = 8 << 20;

/// Images a node keeps at most while others take their parts (one more is refused).
const IMAGES_KEPT: usize = 4;

/// The largest image taken (1 TiB: a peer saying more is confused).
const IMAGE_AT_MOST: u64 = 1 << 40;

/// A part of a table's image, sent to a node filling its copy.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ImagePart {
    /// The image's number, for the next parts (kept by the sender).
    id: u64,
    /// The image's bytes in all.
    total: u64,
    /// This part's bytes.
    bytes: Vec<u8>,
}

/// The images a node sends in parts: kept until their last part is taken, or for
/// [`IMAGE_WAIT`] after the last part taken.
pub(crate) struct KeptImages {
    /// The bytes of each part.
    part: usize,
    next: std::sync::atomic::AtomicU64,
    kept: parking_lot::Mutex<Vec<Kept>>,
}

struct Kept {
    id: u64,
    bytes: Vec<u8>,
    until: std::time::Instant,
}

impl KeptImages {
    /// None kept, sending parts of `part` bytes.
    pub(crate) fn new(part: usize) -> KeptImages {
        KeptImages { part: part.max(1), next: std::sync::atomic::AtomicU64::new(1), kept: Default::default() }
    }

    /// The first part of `image`; the image is kept for the others, if there are more
    /// (refused while [`IMAGES_KEPT`] others are being taken: ask again later).
    fn first(&self, image: Vec<u8>) -> std::result::Result<ImagePart, String> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let total = image.len() as u64;
        if image.len() <= self.part {
            return Ok(ImagePart { id, total, bytes: image });
        }
        let bytes = image[..self.part].to_vec();
        self.sweep();
        let mut kept = self.kept.lock();
        if kept.len() >= IMAGES_KEPT {
            return Err(format!("{IMAGES_KEPT} images are being sent from here already"));
        }
        kept.push(Kept { id, bytes: image, until: std::time::Instant::now() + IMAGE_WAIT });
        Ok(ImagePart { id, total, bytes })
    }

    /// Drops the images whose parts were not asked for [`IMAGE_WAIT`] (their asker gave
    /// up, or stopped).
    pub(crate) fn sweep(&self) {
        let now = std::time::Instant::now();
        self.kept.lock().retain(|k| k.until > now);
    }

    /// The part of image `id` from byte `offset` (the image goes with its last part).
    pub(crate) fn part(&self, id: u64, offset: u64) -> std::result::Result<ImagePart, String> {
        self.sweep();
        let now = std::time::Instant::now();
        let mut kept = self.kept.lock();
        let Some(at) = kept.iter().position(|k| k.id == id) else {
            return Err(format!("no image {id} kept here (taken whole, or kept too long)"));
        };
        let image = &mut kept[at];
        let total = image.bytes.len();
        let start = usize::try_from(offset).ok().filter(|o| *o < total);
        let Some(start) = start else { return Err(format!("image {id} has {total} bytes, not {offset}")) };
        let end = start.saturating_add(self.part).min(total);
        let bytes = image.bytes[start..end].to_vec();
        image.until = now + IMAGE_WAIT;
        if end == total {
            kept.remove(at);
        }
        Ok(ImagePart { id, total: total as u64, bytes })
    }
}

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
            match self.ask_member(&self.image_links, member, addr.clone(), &request, IMAGE_WAIT).await {
                Some(Response::Image(Ok(first))) => match self.image_rest(member, addr, first).await {
                    Ok(image) => return Some(image),
                    Err(why) => {
                        tracing::debug!(target: "mnesia::cluster", member, %why, table, "an image not taken whole");
                    }
                },
                Some(Response::Image(Err(why))) => {
                    tracing::debug!(target: "mnesia::cluster", member, %why, table, "no image of the table there");
                }
                _ => {}
            }
        }
        None
    }

    /// The image whose first part member `member` sent, its other parts taken from it.
    async fn image_rest(
        &self,
        member: u64,
        addr: String,
        first: ImagePart,
    ) -> std::result::Result<Vec<u8>, String> {
        let ImagePart { id, total, bytes: mut image } = first;
        if total > IMAGE_AT_MOST {
            return Err(format!("image {id} of {total} bytes: more than {IMAGE_AT_MOST} are not taken"));
        }
        while (image.len() as u64) < total {
            let request = Request::ImagePart { id, offset: image.len() as u64 };
            match self.ask_member(&self.image_links, member, addr.clone(), &request, IMAGE_WAIT).await {
                Some(Response::Image(Ok(part)))
                    if part.id == id && part.total == total && !part.bytes.is_empty() =>
                {
                    image.extend_from_slice(&part.bytes);
                }
                Some(Response::Image(Err(why))) => return Err(why),
                _ => return Err(format!("part from byte {} of image {id} not given", image.len())),
            }
        }
        if image.len() as u64 != total {
            return Err(format!("image {id}: {} bytes where {total} were said", image.len()));
        }
        Ok(image)
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
/// applied as far (within half the asker's wait), the first part of the table's image
/// (kept in `images` for the others).
pub(crate) async fn answer_image(images: &KeptImages, db: &Database, table: &str, at: u64) -> Response {
    let deadline = tokio::time::Instant::now() + IMAGE_WAIT / 2;
    while db.applied_index() < at {
        if tokio::time::Instant::now() >= deadline {
            return Response::Image(Err(format!("this node has not reached place {at} of the order")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut image = Vec::new();
    let written = tokio::task::block_in_place(|| db.write_table_image(table, &mut image));
    Response::Image(written.map_err(|e| e.to_string()).and_then(|_| images.first(image)))
}

/// Fills, for as long as the node runs, each copy of `db` that waits to be filled, from an
/// image another member writes; and tells the others, through the log, of the copies
/// given to this node that are filled.
pub(crate) async fn fill_copies(shared: Arc<Shared>, db: Database) {
    let mut tick = tokio::time::interval(FILL_LOOK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut was_filling, mut last) = (false, tokio::time::Instant::now());
    loop {
        tick.tick().await;
        // At once when a copy begins or ends its wait, else every `FILL_EVERY`.
        let filling = db.filling();
        let changed = filling != was_filling;
        was_filling = filling;
        if !changed && last.elapsed() < FILL_EVERY {
            continue;
        }
        last = tokio::time::Instant::now();
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
        shared.images.sweep();
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
            let images = KeptImages::new(IMAGE_PART);
            let answer = answer_image(&images, &db, "spot", 0).await;
            assert!(matches!(answer, Response::Image(Ok(part)) if part.bytes.len() as u64 == part.total));
            assert!(matches!(answer_image(&images, &db, "nope", 0).await, Response::Image(Err(_))));
        });
    }

    #[test]
    fn an_image_larger_than_a_part_is_sent_in_parts_and_kept_until_the_last() {
        use mnesia::prelude::*;
        #[derive(Table, Clone, Debug, Serialize, Deserialize)]
        struct Spot {
            #[key]
            id: u32,
            text: String,
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        let db = Database::in_memory().expect("db");
        db.create_table::<Spot>(TableOptions::new()).expect("table");
        for id in 0..100 {
            db.scope(|| Spot::write(Spot { id, text: format!("spot {id}") })).expect("write");
        }
        let mut whole = Vec::new();
        db.write_table_image("spot", &mut whole).expect("image");
        let images = KeptImages::new(100);
        let Response::Image(Ok(first)) = rt.block_on(answer_image(&images, &db, "spot", 0)) else {
            panic!("no image")
        };
        assert_eq!((first.bytes.len(), first.total), (100, whole.len() as u64));
        let (id, mut image) = (first.id, first.bytes);
        assert!(images.part(id, whole.len() as u64).is_err(), "no part past the end");
        assert!(images.part(id + 1, 0).is_err(), "no such image");
        while image.len() < whole.len() {
            let part = images.part(id, image.len() as u64).expect("part");
            assert!(part.bytes.len() <= 100 && part.total == whole.len() as u64);
            image.extend(part.bytes);
        }
        assert_eq!(image, whole);
        // Gone with its last part.
        assert!(images.part(id, 0).is_err());
        // At most a few kept at once: one more is refused (asked again later).
        let ids: Vec<u64> = (0..IMAGES_KEPT).map(|_| images.first(whole.clone()).expect("kept").id).collect();
        assert!(images.first(whole.clone()).is_err());
        assert!(ids.iter().all(|id| images.part(*id, 100).is_ok()));
        // (A small image is sent whole, never kept.)
        assert!(KeptImages::new(whole.len()).first(whole.clone()).is_ok_and(|p| p.bytes == whole));
    }
}
