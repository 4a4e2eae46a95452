//! `/report`: where the installer says how far it got.

use std::sync::Arc;

use http::StatusCode;
use pxe_stack::http::Routes;
use pxe_stack::route::{Params, RouteRequest, reply};
use pxe_stack::{Event, EventKind, EventSink, InstallStage};

use super::{Component, Context, requested_mac};
use crate::layout::Layout;

/// Turns installer reports (`?mac=..&stage=..`, the body as detail) into timeline events.
pub(crate) struct Report {
    events: Arc<dyn EventSink>,
}

impl Report {
    pub(crate) fn new(cx: &Context<'_>) -> Self {
        Report {
            events: cx.events.clone(),
        }
    }
}

impl Component for Report {
    fn routes(&self, routes: Routes) -> Routes {
        let events = self.events.clone();
        routes.exact(Layout::REPORT, move |req: RouteRequest| {
            let events = events.clone();
            async move {
                let Ok(params) = Params::of(&req.request) else {
                    return reply::error(StatusCode::BAD_REQUEST, "unreadable query");
                };
                let mac = requested_mac(&params, &req);
                let stage = params.get("stage").map(str::parse::<InstallStage>);
                let (Some(mac), Some(stage)) = (mac, stage) else {
                    return reply::error(StatusCode::BAD_REQUEST, "need mac and stage");
                };
                let Ok(stage) = stage else {
                    return reply::error(StatusCode::BAD_REQUEST, "unknown stage");
                };
                let detail = String::from_utf8_lossy(req.request.body()).into_owned();
                events.emit(Event::now(
                    Some(mac),
                    Some(req.peer.ip()),
                    EventKind::Report { stage, detail },
                ));
                reply::ok("text/plain", "ok\n")
            }
        })
    }
}
