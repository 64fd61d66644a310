// @ts-check
// A list of DOM rows kept in step with a list of keyed items (the message
// list). A row is built once per key and again only when its item's signature
// (a string of everything the row shows) changes; then the parent's children
// are put in order with one insertBefore per row that is new or out of place
// and one remove per row that went away or was rebuilt, so a new message costs
// one row, and a page of older ones costs that page. No DOM of its own: it
// uses only firstChild, nextSibling, insertBefore and remove, so the unit test
// drives it with a stand-in.

/**
 * @typedef {object} Row
 * @property {string} key    names the row across updates (unique: a repeat gets "#2", "#3"...)
 * @property {string} sig    what the row shows: the same signature keeps the same row
 * @property {() => ChildNode} build  builds the row
 */

/**
 * @typedef {object} Changes
 * @property {number} built     rows built (new keys and changed signatures)
 * @property {number} inserted  insertBefore calls (rows built, or moved)
 * @property {number} removed   rows taken out (gone, or replaced by a rebuilt one)
 */

export class KeyedList {
  /**
   * @param {Pick<Node, 'firstChild' | 'insertBefore'>} parent
   *   the element that holds the rows and nothing else
   */
  constructor(parent) {
    this.parent = parent;
    /** @type {Map<string, {sig: string, node: ChildNode}>} */
    this.rows = new Map();
  }

  /**
   * Makes the parent's children the rows of `items`, in that order.
   * @param {Row[]} items
   * @returns {Changes}
   */
  update(items) {
    /** @type {Map<string, {sig: string, node: ChildNode}>} */
    const next = new Map();
    const changes = { built: 0, inserted: 0, removed: 0 };
    for (const it of items) {
      let key = it.key;
      for (let n = 2; next.has(key); n++) key = `${it.key}#${n}`;
      let row = this.rows.get(key);
      if (!row || row.sig !== it.sig) {
        row = { sig: it.sig, node: it.build() };
        changes.built++;
      }
      next.set(key, row);
    }
    for (const [key, row] of this.rows) {
      const kept = next.get(key);
      if (kept && kept.node === row.node) continue;
      row.node.remove();
      changes.removed++;
    }
    this.rows = next;
    // What is left is in the old order: walk it beside the new order, passing
    // each row already in place and inserting any other before it.
    let ref = this.parent.firstChild;
    for (const { node } of next.values()) {
      if (node === ref) {
        ref = ref.nextSibling;
        continue;
      }
      this.parent.insertBefore(node, ref);
      changes.inserted++;
    }
    return changes;
  }
}
