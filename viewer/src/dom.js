// A small helper of every panel: elements built from properties and children, never from HTML text.

/** A new element with properties, data attributes and children (text given as properties is text). */
export function element(tag, { dataset = {}, ...props } = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  for (const child of children) node.append(child);
  return node;
}
