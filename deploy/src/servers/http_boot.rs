//! UEFI HTTP boot: the iPXE binary that DHCP names in its HTTP boot URL, served from the iPXE
//! directory (the HTTP root is the image cache, which does not hold it).

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use pxe_stack::http::Routes;
use pxe_stack::route::{RouteRequest, reply};

use super::{Component, Context};

/// Serves the EFI boot file at [`Layout::efi_boot_path`](crate::Layout::efi_boot_path).
pub(crate) struct HttpBoot {
    path: String,
    file: Arc<PathBuf>,
}

impl HttpBoot {
    pub(crate) fn new(cx: &Context<'_>) -> Self {
        HttpBoot {
            path: cx.layout.efi_boot_path(),
            // The plan checks that the name is a plain file name, so this stays in the directory.
            file: Arc::new(cx.layout.ipxe_dir().join(cx.layout.efi_boot_file())),
        }
    }
}

impl Component for HttpBoot {
    fn routes(&self, routes: Routes) -> Routes {
        let file = self.file.clone();
        routes.exact(self.path.clone(), move |_req: RouteRequest| {
            let file = file.clone();
            async move {
                match tokio::fs::read(file.as_path()).await {
                    Ok(bytes) => reply::ok("application/efi", bytes),
                    Err(e) => {
                        tracing::warn!(file = %file.display(), error = %e, "efi boot file");
                        reply::error(StatusCode::NOT_FOUND, "no such boot file")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::{Artifacts, Layout, Plan};

    #[tokio::test]
    async fn the_http_boot_url_serves_the_efi_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snponly.efi"), b"MZ efi binary").unwrap();
        let plan = Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nipxe_dir = \"{}\"\n",
                dir.path().display()
            ),
            "plan.toml",
        )
        .unwrap();
        let artifacts = Artifacts::for_tests(dir.path().to_owned());
        let layout = Layout::new(&plan, &artifacts);
        let cx = Context {
            plan: &plan,
            layout: &layout,
            events: Arc::new(pxe_stack::Discard),
            leases: pxe_stack::dhcp::Leases::new(pxe_stack::dhcp::LeaseTable::new()),
            state: crate::state::for_tests(&layout),
            leases6: None,
        };
        let routes = HttpBoot::new(&cx).routes(Routes::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            pxe_stack::http::Server::new(pxe_stack::http::Config::default())
                .with_routes(routes)
                .serve(listener, async {
                    let _ = stopped.await;
                }),
        );
        let get = move |path: &'static str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let (served, missing) =
            tokio::task::spawn_blocking(move || (get("/snponly.efi"), get("/ipxe.efi")))
                .await
                .unwrap();
        assert!(served.starts_with("HTTP/1.0 200"), "{served}");
        assert!(served.ends_with("MZ efi binary"), "{served}");
        assert!(missing.contains(" 404 "), "{missing}");
        let _ = stop.send(());
        let _ = server.await;
    }
}
