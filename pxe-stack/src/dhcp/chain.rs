//! Feeding TFTP transfer events back into the DHCP lease table for
//! [`ChainMode::Stateful`](crate::ChainMode::Stateful).

use std::sync::Arc;

use super::leases::Leases;
use crate::{Event, EventKind, EventSink, HostLookup, Protocol, TransferStatus};

/// An [`EventSink`] to hand the TFTP server: it passes every event on to `inner` and, when a
/// host has been sent `boot_file` in full, marks its MAC chained, so its next DHCP (now from
/// `undionly.kpxe`) gets the iPXE script. Only needed with
/// [`ChainMode::Stateful`](crate::ChainMode::Stateful).
pub struct MarkChained {
    leases: Leases,
    boot_file: String,
    inner: Arc<dyn EventSink>,
}

impl MarkChained {
    /// Watch transfers of `boot_file` (such as `undionly.kpxe`; a leading `/` is ignored).
    pub fn new(leases: Leases, boot_file: impl Into<String>, inner: Arc<dyn EventSink>) -> Self {
        MarkChained {
            leases,
            boot_file: boot_file.into().trim_start_matches('/').to_owned(),
            inner,
        }
    }
}

impl std::fmt::Debug for MarkChained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkChained")
            .field("boot_file", &self.boot_file)
            .finish_non_exhaustive()
    }
}

impl EventSink for MarkChained {
    fn emit(&self, event: Event) {
        if let EventKind::Transfer {
            protocol: Protocol::Tftp,
            path,
            status: TransferStatus::TftpComplete,
            ..
        } = &event.kind
            && path.trim_start_matches('/') == self.boot_file
        {
            let mac = event
                .mac
                .or_else(|| event.addr.and_then(|a| self.leases.mac_for(a)));
            if let Some(mac) = mac {
                self.leases.mark_chained(mac);
            }
        }
        self.inner.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mac, Recorder};
    use std::time::Duration;

    fn transfer(mac: Option<Mac>, path: &str, status: TransferStatus) -> Event {
        Event::now(
            mac,
            None,
            EventKind::Transfer {
                protocol: Protocol::Tftp,
                path: path.into(),
                bytes: 1,
                duration: Duration::ZERO,
                status,
            },
        )
    }

    #[test]
    fn marks_only_completed_transfers_of_the_boot_file() {
        let leases = Leases::default();
        let rec = Recorder::new();
        let sink = MarkChained::new(leases.clone(), "undionly.kpxe", Arc::new(rec.clone()));
        let (a, b, c) = (
            Mac([2, 0, 0, 0, 0, 1]),
            Mac([2, 0, 0, 0, 0, 2]),
            Mac([2, 0, 0, 0, 0, 3]),
        );
        sink.emit(transfer(
            Some(a),
            "/undionly.kpxe",
            TransferStatus::TftpComplete,
        ));
        sink.emit(transfer(
            Some(b),
            "undionly.kpxe",
            TransferStatus::TftpRefused(1),
        ));
        sink.emit(transfer(Some(c), "ipxe.efi", TransferStatus::TftpComplete));
        assert!(leases.read().is_chained(a));
        assert!(!leases.read().is_chained(b));
        assert!(!leases.read().is_chained(c));
        assert_eq!(rec.events().len(), 3);
    }
}
