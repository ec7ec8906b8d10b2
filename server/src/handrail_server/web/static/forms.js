/* Handrail UI: forms generated from JSON Schema, checked in the page before anything is
 * sent (the server checks again), and the diff of edited arguments.
 *
 *   <div data-schema-form data-schema="<id of a JSON script>" data-initial="<id>"
 *        data-target="<name of the textarea that carries the JSON>">
 *
 * Without a schema the textarea stays as a JSON editor. enum -> select, boolean ->
 * checkbox (switch), integer/number -> numeric input, string -> text input (or textarea,
 * date, email), object -> fieldset, array -> a list with add/remove. Anything else (oneOf,
 * $ref, several types) gets a small JSON editor of its own.
 */
(function () {
  "use strict";

  var counter = 0;

  function readJson(id) {
    if (!id) return undefined;
    var el = document.getElementById(id);
    if (!el) return undefined;
    try { return JSON.parse(el.textContent); } catch (e) { return undefined; }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function typeOf(schema) {
    if (!schema || typeof schema !== "object") return null;
    if (Array.isArray(schema.enum)) return "enum";
    var t = schema.type;
    if (Array.isArray(t)) {
      var real = t.filter(function (x) { return x !== "null"; });
      t = real.length === 1 ? real[0] : null;
    }
    if (!t && schema.properties) t = "object";
    if (!t && schema.items) t = "array";
    if (schema.oneOf || schema.anyOf || schema.allOf || schema.$ref) return null;
    return ["string", "integer", "number", "boolean", "object", "array"].indexOf(t) >= 0 ? t : null;
  }

  function pathJoin(path, key) {
    return typeof key === "number" ? path + "[" + key + "]" : path + "." + key;
  }

  /* ------------------------------------------------------------ the validator */

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  function isType(value, t) {
    switch (t) {
      case "null": return value === null;
      case "boolean": return typeof value === "boolean";
      case "string": return typeof value === "string";
      case "integer": return typeof value === "number" && Number.isInteger(value);
      case "number": return typeof value === "number" && isFinite(value);
      case "array": return Array.isArray(value);
      case "object": return value !== null && typeof value === "object" && !Array.isArray(value);
      default: return true;
    }
  }

  function validate(schema, value, path, errors) {
    if (!schema || typeof schema !== "object" || value === undefined) return;
    var types = schema.type === undefined ? [] : [].concat(schema.type);
    if (types.length && !types.some(function (t) { return isType(value, t); })) {
      errors.push({ path: path, message: "must be " + types.join(" or ") });
      return;
    }
    if (Array.isArray(schema.enum) && !schema.enum.some(function (v) { return same(v, value); })) {
      errors.push({ path: path, message: "must be one of " + schema.enum.map(function (v) { return JSON.stringify(v); }).join(", ") });
    }
    if (schema.const !== undefined && !same(schema.const, value)) errors.push({ path: path, message: "must be " + JSON.stringify(schema.const) });
    if (typeof value === "string") {
      var length = Array.from(value).length;
      if (schema.minLength !== undefined && length < schema.minLength) errors.push({ path: path, message: "must be at least " + schema.minLength + " characters" });
      if (schema.maxLength !== undefined && length > schema.maxLength) errors.push({ path: path, message: "must be at most " + schema.maxLength + " characters" });
      if (schema.pattern) {
        try { if (!new RegExp(schema.pattern, "u").test(value)) errors.push({ path: path, message: "does not match the expected format" }); } catch (e) { /* the server decides */ }
      }
    }
    if (typeof value === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) errors.push({ path: path, message: "must be at least " + schema.minimum });
      if (schema.maximum !== undefined && value > schema.maximum) errors.push({ path: path, message: "must be at most " + schema.maximum });
      if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) errors.push({ path: path, message: "must be more than " + schema.exclusiveMinimum });
      if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) errors.push({ path: path, message: "must be less than " + schema.exclusiveMaximum });
      if (schema.multipleOf && Math.abs(value / schema.multipleOf - Math.round(value / schema.multipleOf)) > 1e-9) errors.push({ path: path, message: "must be a multiple of " + schema.multipleOf });
    }
    if (isType(value, "object")) {
      (schema.required || []).forEach(function (k) {
        if (!(k in value)) errors.push({ path: pathJoin(path, k), message: "is required" });
      });
      var props = schema.properties || {};
      Object.keys(value).forEach(function (k) {
        if (props[k]) validate(props[k], value[k], pathJoin(path, k), errors);
        else if (schema.additionalProperties === false) errors.push({ path: pathJoin(path, k), message: "is not allowed here" });
        else if (schema.additionalProperties && typeof schema.additionalProperties === "object") validate(schema.additionalProperties, value[k], pathJoin(path, k), errors);
      });
    }
    if (Array.isArray(value)) {
      if (schema.minItems !== undefined && value.length < schema.minItems) errors.push({ path: path, message: "needs at least " + schema.minItems + " item(s)" });
      if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push({ path: path, message: "takes at most " + schema.maxItems + " item(s)" });
      if (schema.uniqueItems) {
        var seen = {};
        value.forEach(function (v, i) { var k = JSON.stringify(v); if (seen[k]) errors.push({ path: pathJoin(path, i), message: "repeats an earlier item" }); seen[k] = true; });
      }
      if (schema.items && typeof schema.items === "object") value.forEach(function (v, i) { validate(schema.items, v, pathJoin(path, i), errors); });
    }
  }

  /* ------------------------------------------------------------ the form builder */

  function Field(schema, initial, path, label, required, registry) {
    var id = "sf-" + (++counter);
    var type = typeOf(schema);
    var help = schema && schema.description ? el("p", { id: id + "-help", class: "help", text: schema.description }) : null;
    var errorEl = el("p", { id: id + "-error", class: "field-error", hidden: true });
    var describedBy = [help ? id + "-help" : null, id + "-error"].filter(Boolean).join(" ");
    var labelText = label + (required ? " (required)" : "");
    var self = { path: path, focusId: id };
    registry[path] = { errorEl: errorEl, focusId: id };
    var wrap;

    function setInvalid(input) {
      self.invalid = function (on) { if (on) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid"); };
    }

    if (type === "enum") {
      var select = el("select", { id: id, "aria-describedby": describedBy, "aria-required": required ? "true" : null });
      select.appendChild(el("option", { value: "", text: "— choose —" }));
      schema.enum.forEach(function (v, i) {
        select.appendChild(el("option", { value: String(i), text: typeof v === "string" ? v : JSON.stringify(v), selected: same(v, initial) }));
      });
      wrap = el("div", { class: "sf-field" }, [el("label", { for: id, text: labelText }), help, select, errorEl]);
      setInvalid(select);
      self.collect = function () { return select.value === "" ? undefined : schema.enum[parseInt(select.value, 10)]; };
    } else if (type === "boolean") {
      var box = el("input", { type: "checkbox", role: "switch", id: id, "aria-describedby": describedBy, checked: initial === true });
      wrap = el("div", { class: "sf-field" }, [el("label", { class: "toggle", for: id }, [box, document.createTextNode(label)]), help, errorEl]);
      setInvalid(box);
      self.collect = function () { return box.checked; };
    } else if (type === "integer" || type === "number") {
      var num = el("input", { type: "text", inputmode: type === "integer" ? "numeric" : "decimal", id: id, autocomplete: "off",
        "aria-describedby": describedBy, "aria-required": required ? "true" : null, value: typeof initial === "number" ? String(initial) : null });
      wrap = el("div", { class: "sf-field" }, [el("label", { for: id, text: labelText }), help, num, errorEl]);
      setInvalid(num);
      self.collect = function (errors) {
        var text = num.value.trim();
        if (text === "") return undefined;
        if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) { errors.push({ path: path, message: "must be a number" }); return undefined; }
        return Number(text);
      };
    } else if (type === "string") {
      var long = (schema.maxLength || 0) > 200 || (typeof initial === "string" && initial.indexOf("\n") >= 0) || schema.format === "textarea";
      var kind = schema.format === "date" ? "date" : schema.format === "email" ? "email" : "text";
      var input = long ? el("textarea", { id: id, rows: 3 }) : el("input", { type: kind, id: id, autocomplete: "off" });
      input.setAttribute("aria-describedby", describedBy);
      if (required) input.setAttribute("aria-required", "true");
      if (typeof initial === "string") input.value = initial;
      var keepEmpty = initial === "";
      wrap = el("div", { class: "sf-field" }, [el("label", { for: id, text: labelText }), help, input, errorEl]);
      setInvalid(input);
      self.collect = function () { return input.value === "" && !keepEmpty ? undefined : input.value; };
    } else if (type === "object") {
      var props = schema.properties || {};
      var need = schema.required || [];
      var start = isType(initial, "object") ? initial : {};
      var children = Object.keys(props).map(function (k) {
        return { key: k, field: Field(props[k], start[k], pathJoin(path, k), props[k].title || k, need.indexOf(k) >= 0, registry) };
      });
      var extra = {};
      Object.keys(start).forEach(function (k) { if (!props[k]) extra[k] = start[k]; }); // kept as they were
      var body = children.map(function (c) { return c.field.el; });
      wrap = path === "$" ? el("div", { class: "sf-root" }, [help].concat(body).concat([errorEl]))
        : el("fieldset", { id: id, tabindex: "-1" }, [el("legend", { text: labelText }), help].concat(body).concat([errorEl]));
      self.invalid = function () {};
      self.collect = function (errors) {
        var out = {};
        Object.keys(extra).forEach(function (k) { out[k] = extra[k]; });
        children.forEach(function (c) { var v = c.field.collect(errors); if (v !== undefined) out[c.key] = v; });
        return out;
      };
    } else if (type === "array") {
      var itemSchema = schema.items && typeof schema.items === "object" ? schema.items : {};
      var list = el("div", { class: "sf-list" });
      var items = [];
      var addButton = el("button", { type: "button", text: "Add " + (itemSchema.title || "item") + " to " + label });
      var renumber = function () {
        items.forEach(function (item, i) {
          item.remove.textContent = "Remove item " + (i + 1);
          item.remove.setAttribute("aria-label", "Remove item " + (i + 1) + " of " + label);
        });
      };
      var add = function (value, focus) {
        var index = items.length;
        var child = Field(itemSchema, value, pathJoin(path, index), (itemSchema.title || label) + " " + (index + 1), true, registry);
        var remove = el("button", { type: "button" });
        var box = el("div", { class: "sf-item" }, [child.el, remove]);
        var item = { field: child, remove: remove, box: box };
        remove.addEventListener("click", function () {
          var at = items.indexOf(item);
          items.splice(at, 1);
          list.removeChild(box);
          renumber();
          (items[at] ? items[at].remove : addButton).focus();
          notify();
        });
        items.push(item);
        list.appendChild(box);
        renumber();
        if (focus) { var f = document.getElementById(child.focusId); if (f) f.focus(); }
      };
      (Array.isArray(initial) ? initial : []).forEach(function (v) { add(v, false); });
      addButton.addEventListener("click", function () { add(undefined, true); notify(); });
      wrap = el("fieldset", { id: id, tabindex: "-1" }, [el("legend", { text: labelText }), help, list, addButton, errorEl]);
      self.invalid = function () {};
      self.collect = function (errors) {
        return items.map(function (item) { var v = item.field.collect(errors); return v === undefined ? null : v; });
      };
    } else {
      var raw = el("textarea", { id: id, rows: 3, spellcheck: "false", "aria-describedby": describedBy });
      if (initial !== undefined) raw.value = JSON.stringify(initial, null, 2);
      wrap = el("div", { class: "sf-field" }, [el("label", { for: id, text: labelText + " (JSON)" }), help, raw, errorEl]);
      setInvalid(raw);
      self.collect = function (errors) {
        if (raw.value.trim() === "") return undefined;
        try { return JSON.parse(raw.value); } catch (e) { errors.push({ path: path, message: "is not valid JSON" }); return undefined; }
      };
    }
    self.el = wrap;
    return self;
  }

  var notify = function () {};

  /* ------------------------------------------------------------ errors shown */

  function showErrors(form, errors, registry) {
    var summary = form.querySelector("[data-errors]");
    Object.keys(registry).forEach(function (p) { registry[p].errorEl.hidden = true; registry[p].errorEl.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (x) { x.removeAttribute("aria-invalid"); });
    summary.innerHTML = "";
    if (!errors.length) return;
    summary.appendChild(el("p", { class: "error", text: errors.length === 1 ? "There is a problem:" : "There are " + errors.length + " problems:" }));
    var ul = el("ul");
    errors.forEach(function (e) {
      var at = registry[e.path] || registry[e.path.replace(/(\.[^.\[]+|\[\d+\])$/, "")];
      var text = (e.label || e.path.replace(/^\$\.?/, "") || "the value") + " " + e.message;
      var item = el("li");
      if (at) {
        at.errorEl.hidden = false;
        at.errorEl.textContent = (at.errorEl.textContent ? at.errorEl.textContent + "; " : "") + e.message;
        var target = document.getElementById(at.focusId);
        if (target) target.setAttribute("aria-invalid", "true");
        var link = el("a", { href: "#" + at.focusId, text: text });
        link.addEventListener("click", function (ev) { ev.preventDefault(); if (target) target.focus(); });
        item.appendChild(link);
      } else {
        item.textContent = text;
      }
      ul.appendChild(item);
    });
    summary.appendChild(ul);
    summary.focus();
  }

  /* ------------------------------------------------------------ the diff */

  function diff(before, after, path, out) {
    if (same(before, after)) return out;
    if (isType(before, "object") && isType(after, "object")) {
      Object.keys(before).forEach(function (k) {
        if (!(k in after)) out.push({ op: "remove", path: pathJoin(path, k), from: before[k] });
        else diff(before[k], after[k], pathJoin(path, k), out);
      });
      Object.keys(after).forEach(function (k) { if (!(k in before)) out.push({ op: "add", path: pathJoin(path, k), to: after[k] }); });
      return out;
    }
    out.push({ op: "replace", path: path, from: before, to: after });
    return out;
  }

  function showDiff(list, original, edited) {
    list.innerHTML = "";
    if (edited === undefined) { list.appendChild(el("li", { text: "The arguments are not valid JSON yet." })); return; }
    var changes = diff(original, edited, "$", []);
    if (!changes.length) { list.appendChild(el("li", { text: "No changes." })); return; }
    changes.forEach(function (c) {
      var where = c.path.replace(/^\$\.?/, "") || "(all)";
      var text = c.op === "add" ? "added " + where + " = " + JSON.stringify(c.to)
        : c.op === "remove" ? "removed " + where + " (was " + JSON.stringify(c.from) + ")"
        : "changed " + where + ": " + JSON.stringify(c.from) + " → " + JSON.stringify(c.to);
      list.appendChild(el("li", { class: c.op, text: text }));
    });
  }

  /* ------------------------------------------------------------ wiring */

  function setup(form) {
    var holder = form.querySelector("[data-schema-form]");
    var schema = holder ? readJson(holder.getAttribute("data-schema")) : undefined;
    var initial = holder ? readJson(holder.getAttribute("data-initial")) : undefined;
    var target = holder ? form.querySelector('[name="' + holder.getAttribute("data-target") + '"]') : null;
    var editor = form.querySelector("[data-json-editor]");
    var registry = {};
    var root = null;
    if (holder && schema && typeOf(schema)) {
      root = Field(schema, initial, "$", holder.getAttribute("data-name") || "Value", true, registry);
      holder.appendChild(root.el);
      if (editor) editor.hidden = true; // the generated form replaces the JSON editor
    } else if (target) {
      registry["$"] = { errorEl: el("p", { class: "field-error", hidden: true }), focusId: target.id };
      target.parentNode.insertBefore(registry["$"].errorEl, target.nextSibling);
    }

    function current(errors) {
      if (root) {
        var v = root.collect(errors);
        if (v === undefined) errors.push({ path: "$", message: "is required" });
        return v;
      }
      if (!target) return undefined;
      try { return JSON.parse(target.value); } catch (e) { errors.push({ path: "$", message: "is not valid JSON" }); return undefined; }
    }

    var diffList = form.querySelector("[data-diff]");
    if (diffList && initial !== undefined) {
      notify = function () { var errs = []; var v = current(errs); showDiff(diffList, initial, errs.length ? undefined : v); };
      form.addEventListener("input", notify);
      form.addEventListener("change", notify);
    }

    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      var choice = submitter && submitter.name === "decision" ? submitter.value : null;
      var errors = [];
      var needsValue = form.hasAttribute("data-answer-form") || choice === "modify";
      if (needsValue) {
        var value = current(errors);
        if (!errors.length) {
          if (choice === "modify" && !isType(value, "object")) errors.push({ path: "$", message: "must be a JSON object" });
          if (schema) validate(schema, value, "$", errors);
        }
        if (!errors.length && target) target.value = JSON.stringify(value);
      }
      if (choice === "reject" || choice === "respond") {
        var message = form.querySelector('[name="message"]');
        if (!message.value.trim()) {
          errors.push({ path: "message", label: "The message", message: "is required to " + choice });
          registry["message"] = { errorEl: registry["message"] ? registry["message"].errorEl : el("p", { class: "field-error", hidden: true }), focusId: message.id };
          if (!registry["message"].errorEl.parentNode) message.parentNode.insertBefore(registry["message"].errorEl, message.nextSibling);
        }
      }
      showErrors(form, errors, registry);
      if (errors.length) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-answer-form], form[data-decision-form]").forEach(setup);
    var serverErrors = document.getElementById("server-errors");
    if (serverErrors) serverErrors.focus();
  });

  window.hrForms = { validate: validate, diff: diff };
})();
