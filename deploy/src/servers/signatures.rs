//! Signatures the installer cannot check are not offered to it.
//!
//! coreos-installer fetches `<image URL>.sig` and checks any signature it finds against the
//! release keys it embeds; `coreos.inst.insecure` only lets it go on when there is none. Images
//! signed by the plan's own keyring were verified by us before they were served, so their
//! signatures stay in the cache but the HTTP server answers 404 for them.

use http::StatusCode;
use pxe_stack::http::Routes;
use pxe_stack::route::{RouteRequest, reply};

use super::{Component, Context};

/// The `.sig` URLs to withhold: those of the metal images, when the plan has its own keyring.
pub(crate) struct Signatures {
    withheld: Vec<String>,
}

impl Signatures {
    pub(crate) fn new(cx: &Context<'_>) -> Self {
        let a = cx.layout.artifacts();
        let withheld = if cx.plan.images.keyring.is_some() {
            a.image
                .iter()
                .chain(&a.image_4k)
                .map(|path| format!("{path}.sig"))
                .collect()
        } else {
            Vec::new()
        };
        Signatures { withheld }
    }
}

impl Component for Signatures {
    fn routes(&self, routes: Routes) -> Routes {
        self.withheld.iter().fold(routes, |routes, path| {
            routes.exact(path, |_req: RouteRequest| async {
                reply::error(
                    StatusCode::NOT_FOUND,
                    "signed by the plan's keyring, which the installer cannot check",
                )
            })
        })
    }
}
