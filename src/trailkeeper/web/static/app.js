// Trailkeeper web UI: small enhancements. Every page works without this script; it never
// builds HTML from strings (values go in through textContent and properties only).
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // The browser's time zone: custom times typed in the filter are read in it.
  function timeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // Summary times are rendered in UTC; show them in local time (the exact UTC time stays
  // in the expanded row and in the element's title).
  function localTimes() {
    const zone = timeZone();
    if (!zone || zone === "UTC" || zone === "Etc/UTC") return;
    $$(".event > summary time").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      el.title = el.textContent + " UTC";
      el.textContent = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
        " " + pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds());
    });
    $$("[data-zone]").forEach((el) => { el.textContent = "(" + zone + ")"; });
  }

  function filterForm() {
    const form = $("form.filters[role=search]");
    if (!form) return;
    // On a phone the filters fold away (unless something in them needs fixing).
    const panel = form.closest("[data-filter-panel]");
    if (panel && !panel.hasAttribute("data-keep-open") && window.matchMedia("(max-width: 760px)").matches) {
      panel.open = false;
    }
    const tz = $("[data-tz]", form);
    const zone = timeZone();
    if (tz && !tz.value && zone !== "UTC" && zone !== "Etc/UTC") tz.value = zone;
    const range = $("[data-range]", form);
    const custom = $$("[data-custom]", form);
    const showCustom = () => {
      const visible = range.value === "custom" || custom.some((f) => $("input", f).value);
      custom.forEach((f) => { f.hidden = !visible; });
      $$("[data-custom-help]", form).forEach((h) => { h.hidden = !visible; });
    };
    if (range) {
      range.addEventListener("change", () => {
        if (range.value !== "custom") custom.forEach((f) => { $("input", f).value = ""; });
        showCustom();
        if (range.value === "custom") $("input", custom[0]).focus();
      });
      custom.forEach((f) => $("input", f).addEventListener("input", () => { range.value = "custom"; }));
      showCustom();
    }
    // Leave empty and default fields out of the URL, so a shared link says only what it means.
    form.addEventListener("submit", () => {
      $$("input, select", form).forEach((el) => {
        const name = el.name;
        if (!name) return;
        const empty = (el.value || "").trim() === "";
        const namedObjects = $$("input[type=hidden][name=object]", form).some((h) => !h.value.includes(","));
        const byDefault = (name === "range" && el.value === "all") || (name === "limit" && el.value === "50") ||
          (name === "object_type" && !$("#f-object").value.trim() && !namedObjects);
        if (empty || byDefault) el.disabled = true;
      });
    });
  }

  // The pickers behave as drop-downs: one open at a time, closed when a click or the focus
  // goes elsewhere, or by Escape (the focus then returns to the picker's button).
  function pickers() {
    const all = $$("details.picker");
    const closeOthers = (target) => all.forEach((picker) => {
      if (picker.open && !picker.contains(target)) picker.open = false;
    });
    all.forEach((picker) => {
      picker.addEventListener("toggle", () => { if (picker.open) closeOthers(picker); });
    });
    document.addEventListener("click", (event) => closeOthers(event.target));
    document.addEventListener("focusin", (event) => closeOthers(event.target));
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      all.forEach((picker) => {
        if (!picker.open) return;
        const inside = picker.contains(document.activeElement);
        picker.open = false;
        if (inside) $("summary", picker).focus();
      });
    });
  }

  // "Find a category" boxes in the pickers narrow their lists.
  function narrowing() {
    $$("[data-narrow]").forEach((input) => {
      input.hidden = false;
      const box = input.closest("fieldset");
      input.addEventListener("input", () => {
        const text = input.value.trim().toLowerCase();
        $$("li", box).forEach((li) => { li.hidden = text !== "" && !li.textContent.toLowerCase().includes(text); });
        $$(".group", box).forEach((g) => { g.hidden = $$("li", g).every((li) => li.hidden); });
      });
    });
  }

  // Suggestions from the lookup catalogues for the author and object inputs.
  function lookups() {
    $$("input[data-lookup]").forEach((input) => {
      const list = document.getElementById(input.getAttribute("list"));
      const typeSelect = $("[data-object-type]");
      const fixed = Array.from(list.children).map((o) => o.cloneNode(true));
      let timer = null;
      let latest = 0;
      const refresh = () => {
        const url = new URL(input.dataset.lookup, location.href);
        url.searchParams.set("search", input.value.trim());
        if (input.id === "f-object") {
          if (!typeSelect || !typeSelect.value) return;
          url.searchParams.set("type", typeSelect.value);
        }
        const ticket = ++latest;
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then((r) => (r.ok ? r.json() : { suggestions: [] }))
          .then((body) => {
            if (ticket !== latest) return;
            list.replaceChildren(...fixed.map((o) => o.cloneNode(true)));
            (body.suggestions || []).forEach((s) => {
              const option = document.createElement("option");
              option.value = s.value;
              option.label = s.label;
              option.textContent = s.label;
              list.appendChild(option);
            });
          })
          .catch(() => {});
      };
      input.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(refresh, 150);
      });
      input.addEventListener("focus", refresh, { once: true });
      if (typeSelect && input.id === "f-object") typeSelect.addEventListener("change", refresh);
    });
  }

  function tools() {
    const copy = $("[data-copy-link]");
    if (copy && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", () => {
        navigator.clipboard.writeText(location.href).then(() => {
          copy.textContent = "Link copied";
          setTimeout(() => { copy.textContent = "Copy link to this view"; }, 2500);
        });
      });
    }
    const expand = $("[data-expand-all]");
    const rows = $$("details.event");
    if (expand && rows.length) {
      expand.hidden = false;
      expand.addEventListener("click", () => {
        const open = expand.getAttribute("aria-pressed") !== "true";
        rows.forEach((d) => { d.open = open; });
        expand.setAttribute("aria-pressed", String(open));
        expand.textContent = open ? "Collapse all" : "Expand all";
      });
    }
  }

  // The chart's bars: one tab stop, arrow keys move between bars (a roving tabindex).
  function chart() {
    const bars = $$("[data-bars] a");
    if (!bars.length) return;
    bars.forEach((bar, i) => bar.setAttribute("tabindex", i === bars.length - 1 ? "0" : "-1"));
    bars.forEach((bar, i) => {
      bar.addEventListener("keydown", (event) => {
        let next = null;
        if (event.key === "ArrowRight") next = Math.min(i + 1, bars.length - 1);
        else if (event.key === "ArrowLeft") next = Math.max(i - 1, 0);
        else if (event.key === "Home") next = 0;
        else if (event.key === "End") next = bars.length - 1;
        if (next === null) return;
        event.preventDefault();
        bar.setAttribute("tabindex", "-1");
        bars[next].setAttribute("tabindex", "0");
        bars[next].focus();
      });
    });
  }

  function alerts() {
    const all = $("[data-select-all]");
    const boxes = $$("[data-alert-box]");
    if (!all || !boxes.length) return;
    all.hidden = false;
    all.addEventListener("change", () => boxes.forEach((b) => { b.checked = all.checked; }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes();
    filterForm();
    pickers();
    narrowing();
    lookups();
    tools();
    chart();
    alerts();
  });
})();
