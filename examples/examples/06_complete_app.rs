//! A small blog, mirroring MnesiaEx's `examples/06_complete_app.exs`: users, posts and
//! comments with auto-increment ids and indexes, a view counter, sessions that expire, and
//! a moderation feed fed by change events — all in one database on disc.
//!
//! Run: `cargo run -p examples --example 06_complete_app`

use std::time::{Duration, SystemTime};

use mnesia::prelude::*;
use mnesia::{DeleteCause, Event};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    name: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "posts")]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    user_id: u64,
    title: String,
    body: String,
    views: u64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "comments")]
struct Comment {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    post_id: u64,
    user_id: u64,
    text: String,
}

/// Logins live 30 minutes unless given a deadline of their own.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "sessions", ttl = "30m")]
struct Session {
    #[key]
    token: String,
    #[index]
    user_id: u64,
    #[ttl]
    expires_at: Option<SystemTime>,
}

fn disc<T: Table>(db: &Database) -> TableOptions<T> {
    TableOptions::new().disc_copies([db.node()])
}

/// Signs a user up: one transaction, so a taken email leaves nothing behind (but a gap in
/// the ids).
fn sign_up(name: &str, email: &str) -> mnesia::Result<User> {
    User::insert(User { id: 0, email: email.into(), name: name.into() })
}

fn log_in(user: &User, token: &str) -> mnesia::Result<Session> {
    Session::write(Session { token: token.into(), user_id: user.id, expires_at: None })
}

/// Publishes a post and the author's first comment on it, atomically.
fn publish(author: &User, title: &str, body: &str) -> mnesia::Result<Post> {
    mnesia::transaction(|| {
        let post = Post::insert(Post {
            id: 0,
            user_id: author.id,
            title: title.into(),
            body: body.into(),
            views: 0,
        })?;
        Comment::insert(Comment { id: 0, post_id: post.id, user_id: author.id, text: "First!".into() })?;
        Ok(post)
    })
}

fn main() -> mnesia::Result<()> {
    let dir = std::env::temp_dir().join(format!("mnesia-blog-{}", std::process::id()));
    if !Schema::exists(&dir)? {
        Schema::create(&dir)?;
    }
    let db = mnesia::start(Config::default().dir(&dir).cleanup_interval(Duration::from_millis(100)))?;
    User::create_table(disc(&db))?;
    Post::create_table(disc(&db))?;
    Comment::create_table(disc(&db))?;
    Session::create_table(disc(&db))?;

    // A moderation feed: every new comment, as it commits.
    let feed = Comment::subscribe()?;
    let sessions = Session::subscribe()?;

    let ann = sign_up("Ann", "ann@blog.io")?;
    let bob = sign_up("Bob", "bob@blog.io")?;
    match sign_up("Impostor", "ann@blog.io") {
        Err(mnesia::Error::UniqueViolation { field, .. }) => println!("sign-up refused: {field} taken"),
        other => panic!("unexpected: {other:?}"),
    }
    let mut users = User::list()?;
    users.sort_by_key(|u| u.id);
    println!("users: {:?}", users.iter().map(|u| (u.id, &u.name)).collect::<Vec<_>>());
    assert_eq!(users, [ann.clone(), bob.clone()], "the refused sign-up left nothing behind");

    let session = log_in(&ann, "tok-ann")?;
    let left = Session::ttl(&session.token)?;
    println!("Ann logged in for {left:?} (30 minutes by default)");
    assert!(left.is_some_and(|d| d > Duration::from_secs(29 * 60) && d <= Duration::from_secs(30 * 60)));
    // Bob's session is a short one, to watch it expire.
    Session::write_with_ttl(
        Session { token: "tok-bob".into(), user_id: bob.id, expires_at: None },
        Duration::from_millis(200),
    )?;

    let hello = publish(&ann, "Hello", "The first post.")?;
    let rust = publish(&ann, "Why Rust", "Types all the way down.")?;
    Comment::insert(Comment { id: 0, post_id: rust.id, user_id: bob.id, text: "Agreed.".into() })?;
    for _ in 0..3 {
        Post::update(&rust.id, |p| p.views += 1)?;
    }
    Post::update(&hello.id, |p| p.views += 1)?;

    println!("Ann's posts, most viewed first:");
    let posts = Post::query().filter(Post::USER_ID.eq(ann.id)).order_by(Post::VIEWS.desc()).all()?;
    let mut shown = Vec::new();
    for p in &posts {
        let comments = Comment::select(Comment::POST_ID.eq(p.id))?;
        println!("  #{} {:?}: {} views, {} comments", p.id, p.title, p.views, comments.len());
        shown.push((p.title.as_str(), p.views, comments.len()));
    }
    assert_eq!(shown, [("Why Rust", 3, 2), ("Hello", 1, 1)]);
    println!(
        "plan for comments of a post: {:?}",
        Comment::query().filter(Comment::POST_ID.eq(rust.id)).explain()?
    );

    let mut fed = Vec::new();
    while let Some(Event::Write { new, .. }) = feed.try_recv() {
        println!("moderation feed: comment #{} on post #{}: {:?}", new.id, new.post_id, new.text);
        fed.push(new.text);
    }
    assert_eq!(fed, ["First!", "First!", "Agreed."], "every comment, in commit order");

    std::thread::sleep(Duration::from_millis(250));
    println!("after 250 ms, Bob's session: {:?}", Session::read(&"tok-bob".to_owned())?);
    println!("Ann's sessions: {}", Session::select(Session::USER_ID.eq(ann.id))?.len());
    assert_eq!(Session::read(&"tok-bob".to_owned())?, None);
    assert_eq!(Session::select(Session::USER_ID.eq(ann.id))?.len(), 1);
    let mut reaped = None;
    while let Some(event) = sessions.recv_timeout(Duration::from_secs(5)) {
        if let Event::Delete { key, cause: DeleteCause::Expired, .. } = event {
            println!("the reaper removed session {key}");
            reaped = Some(key);
            break;
        }
    }
    assert_eq!(reaped.as_deref(), Some("tok-bob"));

    // Deleting a post takes its comments with it, in one transaction.
    mnesia::transaction(|| {
        let comments = Comment::select(Comment::POST_ID.eq(hello.id))?;
        Comment::batch_delete(comments.iter().map(|c| c.id))?;
        Post::delete(&hello.id)?;
        Ok::<_, mnesia::Error>(())
    })?;
    println!(
        "after deleting post #{}: {} posts, {} comments, next post id {}",
        hello.id,
        Post::count()?,
        Comment::count()?,
        Post::current_id()? + 1
    );
    assert_eq!((Post::count()?, Comment::count()?), (1, 2));
    assert_eq!(Post::read(&hello.id)?, None);

    drop(db);
    mnesia::stop()?;
    Schema::delete(&dir)?;
    Ok(())
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
