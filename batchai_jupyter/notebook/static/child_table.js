// The child runs of a sweep: a table whose headers sort it (click again: the other way), the
// best child marked, and an "open" button per row that shows that child in place.
function compare(a, b) {
  const na = a === null || a === undefined || a === "";
  const nb = b === null || b === undefined || b === "";
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number" && !Number.isInteger(v)) return Number(v.toPrecision(6)).toString();
  return String(v);
}

function render({ model, el }) {
  el.classList.add("bai-children");
  const table = document.createElement("table");
  table.className = "bai-children-table";
  el.appendChild(table);
  function draw() {
    const columns = model.get("columns");
    const rows = model.get("rows").slice();
    const ids = model.get("ids");
    const best = model.get("best");
    const sortBy = model.get("sort_by");
    const desc = model.get("descending");
    const col = columns.indexOf(sortBy);
    const order = rows.map((r, i) => i);
    if (col >= 0) {
      order.sort((i, j) => {
        const a = rows[i][col], b = rows[j][col];
        const empty = (v) => v === null || v === undefined || v === "";
        if (empty(a) || empty(b)) return compare(a, b);
        return desc ? compare(b, a) : compare(a, b);
      });
    }
    table.textContent = "";
    const head = table.createTHead().insertRow();
    for (const name of [...columns, ""]) {
      const th = document.createElement("th");
      if (name) {
        th.textContent = name + (name === sortBy ? (desc ? " \u25bc" : " \u25b2") : "");
        th.dataset.column = name;
        th.title = "sort by " + name;
        th.style.cursor = "pointer";
        th.addEventListener("click", () => {
          if (model.get("sort_by") === name) model.set("descending", !model.get("descending"));
          else { model.set("sort_by", name); model.set("descending", name === model.get("primary") ? model.get("goal") === "maximize" : false); }
          model.save_changes();
        });
      }
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const i of order) {
      const tr = body.insertRow();
      tr.dataset.runId = ids[i];
      if (ids[i] === best) { tr.classList.add("bai-best"); tr.title = "best child run"; }
      rows[i].forEach((v, c) => {
        const td = tr.insertCell();
        td.textContent = (c === 1 && ids[i] === best ? "\u2605 " : "") + fmt(v);
      });
      const td = tr.insertCell();
      const open = document.createElement("button");
      open.textContent = "open";
      open.className = "bai-open-child";
      open.addEventListener("click", () => model.send({ kind: "open", id: ids[i] }));
      td.appendChild(open);
    }
  }
  for (const name of ["columns", "rows", "ids", "best", "sort_by", "descending"]) model.on(`change:${name}`, draw);
  draw();
}

export default { render };
