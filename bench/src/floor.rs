//! The floor every figure is compared with: a `HashMap` of records plus a `HashMap` from
//! email to id, under one `RwLock`, doing the same work (clone on read).

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::User;

#[derive(Default)]
pub struct Floor {
    inner: RwLock<(HashMap<u64, User>, HashMap<String, u64>)>,
}

impl Floor {
    pub fn write(&self, u: User) -> User {
        let mut g = self.inner.write();
        let (users, emails) = &mut *g;
        put(users, emails, u.clone());
        u
    }

    pub fn write_many(&self, us: Vec<User>) {
        let mut g = self.inner.write();
        let (users, emails) = &mut *g;
        for u in us {
            put(users, emails, u);
        }
    }

    pub fn read(&self, id: u64) -> Option<User> {
        self.inner.read().0.get(&id).cloned()
    }

    pub fn update(&self, id: u64, f: impl FnOnce(&mut User)) -> Option<User> {
        let mut g = self.inner.write();
        let mut u = g.0.get(&id)?.clone();
        f(&mut u);
        g.0.insert(id, u.clone());
        Some(u)
    }

    pub fn by_email(&self, email: &str) -> Option<User> {
        let g = self.inner.read();
        let id = g.1.get(email)?;
        g.0.get(id).cloned()
    }

    pub fn select(&self, pred: impl Fn(&User) -> bool) -> Vec<User> {
        self.inner.read().0.values().filter(|u| pred(u)).cloned().collect()
    }

    /// The first `n` matches, in the map's order.
    pub fn first_n(&self, n: usize, pred: impl Fn(&User) -> bool) -> Vec<User> {
        self.inner.read().0.values().filter(|u| pred(u)).take(n).cloned().collect()
    }

    /// The `n` youngest (then lowest id), through a heap of `n`: only the winners cloned.
    pub fn youngest(&self, n: usize) -> Vec<User> {
        let g = self.inner.read();
        let mut heap = std::collections::BinaryHeap::with_capacity(n + 1);
        for u in g.0.values() {
            heap.push((u.age, u.id));
            if heap.len() > n {
                heap.pop();
            }
        }
        heap.into_sorted_vec().iter().filter_map(|(_, id)| g.0.get(id).cloned()).collect()
    }
}

/// Inserts or replaces a record and keeps the email map in step.
fn put(users: &mut HashMap<u64, User>, emails: &mut HashMap<String, u64>, u: User) {
    match users.get(&u.id) {
        Some(old) if old.email == u.email => {}
        Some(old) => {
            emails.remove(&old.email);
            emails.insert(u.email.clone(), u.id);
        }
        None => {
            emails.insert(u.email.clone(), u.id);
        }
    }
    users.insert(u.id, u);
}
