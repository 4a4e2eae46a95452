//! The driver trait, read-back checks, and the many-hosts helper.

use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::types::{BootOverride, Persistence, PowerAction, PowerState};

/// The boxed future every [`Bmc`] method returns (boxed so that `dyn Bmc` works).
pub type BmcFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Power and boot control of one host, whatever the protocol.
///
/// Every method is bounded by the driver's [`Policy`](crate::Policy): a silent BMC ends in
/// [`Error::Timeout`], never a hang. Set operations read back what they set and return
/// [`Error::NotApplied`] when the BMC said yes but did nothing, and
/// [`Error::NotVerifiable`] when nothing it reports can show it either way.
pub trait Bmc: Send + Sync {
    /// The current power state.
    fn power_status(&self) -> BmcFuture<'_, PowerState>;

    /// Run a power action and wait (poll) until the power state is the action's
    /// [`expected_state`](PowerAction::expected_state); returns that state.
    ///
    /// `Reset` and `Cycle` must also show the transition (the host seen off, or a changed
    /// reset time): otherwise [`Error::NotVerifiable`] (or [`Error::NotApplied`]).
    /// `Cycle` falls back to off + on when the BMC refuses a cycle.
    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState>;

    /// Set the next boot device, then read it back; returns what the BMC reports.
    ///
    /// The read-back policy is [`check_boot`].
    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride>;

    /// Read the boot override back.
    fn boot(&self) -> BmcFuture<'_, BootOverride>;
}

impl<B: Bmc + ?Sized> Bmc for Box<B> {
    fn power_status(&self) -> BmcFuture<'_, PowerState> {
        (**self).power_status()
    }
    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        (**self).power(action)
    }
    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        (**self).set_boot(boot)
    }
    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        (**self).boot()
    }
}

/// The read-back policy for boot overrides: does `actual` satisfy `requested`?
///
/// - The device must match.
/// - The mode must match. Asking for a mode from a BMC that does not report one is
///   [`Error::NotVerifiable`], never a pass: the device is set, the mode is unknown.
///   Asking for no mode passes whatever the BMC reports.
/// - Asking for `Persistent` and reading `Once` fails. Asking for `Once` and reading
///   `Persistent` passes: the host still boots the device next time, and some BMCs
///   (sushy-tools' fake driver) always report `Continuous`. The caller sees the read-back
///   value and can reset the override after the install if it cares.
pub fn check_boot(requested: &BootOverride, actual: &BootOverride) -> Result<()> {
    let mode_ok = match (requested.mode, actual.mode) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let persistence_ok = !(requested.persistence == Persistence::Persistent
        && actual.persistence == Persistence::Once);
    if requested.device == actual.device && mode_ok && persistence_ok {
        match (requested.mode, actual.mode) {
            (Some(m), None) => Err(Error::NotVerifiable {
                operation: "set boot mode",
                message: format!(
                    "{} reads back, but the bmc does not report the boot mode: {m:?} is unverified",
                    actual.device
                ),
            }),
            _ => Ok(()),
        }
    } else {
        Err(Error::NotApplied {
            operation: "set boot device",
            expected: requested.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Poll `status` until it equals `target` or `policy.settle` runs out.
#[cfg(any(feature = "redfish", feature = "libvirt"))]
pub(crate) async fn settle<F, Fut>(
    policy: &crate::Policy,
    operation: &'static str,
    target: PowerState,
    mut status: F,
) -> Result<PowerState>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PowerState>>,
{
    let deadline = tokio::time::Instant::now() + policy.settle;
    loop {
        let now = status().await?;
        if now == target {
            return Ok(now);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::NotApplied {
                operation,
                expected: target.to_string(),
                actual: now.to_string(),
            });
        }
        tokio::time::sleep(policy.poll_interval).await;
    }
}

/// Run `op` against every host with at most `limit` in flight; results come back in input order.
///
/// A deployment powers on dozens of hosts this way, each with its own driver:
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hosts = vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"];
/// // In real use: |h| async move { drivers[h].power(PowerAction::On).await }
/// let results = bmc_power::for_each_host(hosts, 2, |h| async move {
///     Ok::<_, bmc_power::Error>(h.len())
/// })
/// .await;
/// assert_eq!(results.len(), 3);
/// assert_eq!(results[0].0, "10.0.0.1");
/// # });
/// ```
pub async fn for_each_host<H, F, Fut, T>(
    hosts: impl IntoIterator<Item = H>,
    limit: usize,
    mut op: F,
) -> Vec<(H, Result<T>)>
where
    H: Clone,
    F: FnMut(H) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let futures: Vec<_> = hosts
        .into_iter()
        .map(|h| {
            let fut = op(h.clone());
            async move { (h, fut.await) }
        })
        .collect();
    futures_util::stream::iter(futures)
        .buffered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BootDevice, BootMode};

    fn b(device: BootDevice, p: Persistence, mode: Option<BootMode>) -> BootOverride {
        BootOverride {
            device,
            persistence: p,
            mode,
        }
    }

    #[test]
    fn boot_readback_policy() {
        use BootDevice::*;
        use Persistence::*;
        let u = Some(BootMode::Uefi);
        let l = Some(BootMode::Legacy);
        let cases = [
            (b(Pxe, Once, u), b(Pxe, Once, u), true),
            (b(Pxe, Once, u), b(Pxe, Persistent, u), true),
            (b(Pxe, Persistent, u), b(Pxe, Once, u), false),
            (b(Pxe, Once, u), b(Disk, Once, u), false),
            (b(Pxe, Once, u), b(Pxe, Once, l), false),
            (b(Pxe, Once, Option::None), b(Pxe, Once, l), true),
        ];
        for (req, act, ok) in cases {
            assert_eq!(check_boot(&req, &act).is_ok(), ok, "{req} vs {act}");
        }
        // A mode asked for and not reported is unverified, not passed.
        let e = check_boot(&b(Pxe, Once, u), &b(Pxe, Once, Option::None)).unwrap_err();
        assert!(matches!(e, Error::NotVerifiable { .. }), "{e:?}");
    }
}
