//! The table of dynamic routes other crates plug in.

use std::collections::HashMap;
use std::sync::Arc;

use crate::route::Handler;

/// Request bodies larger than this get `413` unless a route says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// One route: its handler and the largest request body it accepts.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) body_limit: usize,
}

/// Dynamic routes by exact path or by path prefix; consulted before static files.
///
/// An exact match wins over any prefix, and the longest matching prefix wins over shorter ones.
/// Paths are matched on the request's path as sent (no percent-decoding), without the query.
#[derive(Clone, Default)]
pub struct Routes {
    exact: HashMap<String, Route>,
    prefix: Vec<(String, Route)>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut exact: Vec<_> = self.exact.keys().collect();
        exact.sort();
        f.debug_struct("Routes")
            .field("exact", &exact)
            .field(
                "prefix",
                &self.prefix.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes requests for exactly `path` (such as `/boot.ipxe`) to `handler`, with bodies up
    /// to [`DEFAULT_BODY_LIMIT`].
    pub fn exact(self, path: impl Into<String>, handler: impl Handler) -> Self {
        self.exact_with_limit(path, DEFAULT_BODY_LIMIT, Arc::new(handler))
    }

    /// Routes requests whose path starts with `prefix` (such as `/ignition/`) to `handler`,
    /// with bodies up to [`DEFAULT_BODY_LIMIT`].
    pub fn prefix(self, prefix: impl Into<String>, handler: impl Handler) -> Self {
        self.prefix_with_limit(prefix, DEFAULT_BODY_LIMIT, Arc::new(handler))
    }

    /// [`exact`](Self::exact) with a shared handler and an explicit body limit in bytes.
    pub fn exact_with_limit(
        mut self,
        path: impl Into<String>,
        body_limit: usize,
        handler: Arc<dyn Handler>,
    ) -> Self {
        self.exact.insert(
            path.into(),
            Route {
                handler,
                body_limit,
            },
        );
        self
    }

    /// [`prefix`](Self::prefix) with a shared handler and an explicit body limit in bytes.
    pub fn prefix_with_limit(
        mut self,
        prefix: impl Into<String>,
        body_limit: usize,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let prefix = prefix.into();
        self.prefix.retain(|(p, _)| *p != prefix);
        self.prefix.push((
            prefix,
            Route {
                handler,
                body_limit,
            },
        ));
        // Longest first, so the first match is the most specific.
        self.prefix.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty()
    }

    pub(crate) fn find(&self, path: &str) -> Option<&Route> {
        self.exact.get(path).or_else(|| {
            self.prefix
                .iter()
                .find(|(p, _)| path.starts_with(p.as_str()))
                .map(|(_, r)| r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{RouteRequest, reply};

    fn named(name: &'static str) -> impl Handler {
        move |_req: RouteRequest| async move { reply::ok("text/plain", name) }
    }

    fn check(routes: &Routes, path: &str, expected: Option<usize>) {
        assert_eq!(routes.find(path).map(|r| r.body_limit), expected, "{path}");
    }

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let routes = Routes::new()
            .exact_with_limit("/boot.ipxe", 1, Arc::new(named("a")))
            .prefix_with_limit("/", 2, Arc::new(named("b")))
            .prefix_with_limit("/ignition/", 3, Arc::new(named("c")))
            .prefix_with_limit("/ignition/master", 4, Arc::new(named("d")));
        check(&routes, "/boot.ipxe", Some(1));
        check(&routes, "/boot.ipxe2", Some(2));
        check(&routes, "/ignition/worker.ign", Some(3));
        check(&routes, "/ignition/master.ign", Some(4));
        check(&routes, "/ignition", Some(2));
        assert!(Routes::new().find("/x").is_none());
        assert!(Routes::new().is_empty());
    }
}
