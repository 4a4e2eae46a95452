// The live status page: polls /status?since=<seq> and rewrites only the rows that changed,
// so a thousand hosts cost one small request and a few DOM updates per poll.
"use strict";
(function () {
  var base = location.pathname.replace(/[^/]*$/, "");
  var rows = {};
  var seq = 0;
  var body = document.getElementById("hosts");
  var summary = document.getElementById("summary");
  var columns = ["name", "mac", "role", "state", "phase", "times", "last", "bmc", "errors"];

  function text(host) {
    var times = host.phases.map(function (p) {
      return p.phase + " " + p.seconds.toFixed(1);
    }).join(", ");
    var bmc = host.bmc ? host.bmc.step + ": " + host.bmc.outcome : "";
    return {
      name: host.name,
      mac: host.mac,
      role: host.role || "",
      state: host.state,
      phase: host.phase || "",
      times: times,
      last: host.last_event ? host.last_event.what : "",
      bmc: bmc,
      errors: host.errors.join("; ")
    };
  }

  function update(host) {
    var row = rows[host.mac];
    if (!row) {
      row = document.createElement("tr");
      row.id = "host-" + host.mac.replace(/:/g, "-");
      columns.forEach(function (c) {
        var td = document.createElement("td");
        td.className = c;
        row.appendChild(td);
      });
      rows[host.mac] = row;
      body.appendChild(row);
    }
    var t = text(host);
    row.className = host.state;
    columns.forEach(function (c, i) {
      var cell = row.children[i];
      if (cell.textContent !== t[c]) cell.textContent = t[c];
    });
  }

  function poll() {
    fetch(base + "status?since=" + seq, { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        s.hosts.forEach(update);
        seq = s.seq;
        summary.textContent = s.total + " hosts: " + s.installed + " installed, " +
          s.failed + " failed, " + (s.total - s.installed - s.failed) + " in progress" +
          " (updated " + new Date(s.now_unix_ms).toLocaleTimeString() + ")";
      })
      .catch(function () { summary.textContent = "status unavailable, retrying"; })
      .then(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
