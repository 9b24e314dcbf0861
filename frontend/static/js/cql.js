// Building CQL2 text filters from form input, safely: property names are checked against a
// strict pattern and every value is written as a literal (strings between single quotes,
// each quote doubled), so no text a user types can change the shape of the filter. The API
// checks the filter again (unknown or restricted properties are refused there).

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

export const OPERATORS = [
  { value: "=", label: "is" },
  { value: "<>", label: "is not" },
  { value: "<", label: "is less than" },
  { value: ">", label: "is more than" },
  { value: "contains", label: "contains" },
];

export function property(name) {
  if (!NAME.test(name)) throw new Error(`${name} is not a field name`);
  return name;
}

export function stringLiteral(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}

export function dateLiteral(value) {
  if (!ISO_DATE.test(value)) throw new Error("Enter a date as year-month-day, for example 2024-03-31");
  return `DATE(${stringLiteral(value)})`;
}

/** A literal for `value` in a field of JSON Schema `schema` (from the queryables). */
export function literal(value, schema = {}) {
  const text = String(value).trim();
  if (schema.type === "integer" || schema.type === "number") {
    const number = Number(text);
    if (text === "" || !Number.isFinite(number)) throw new Error("Enter a number");
    if (schema.type === "integer" && !Number.isInteger(number)) throw new Error("Enter a whole number");
    return String(number);
  }
  if (schema.type === "boolean") {
    if (!["true", "false"].includes(text.toLowerCase())) throw new Error("Enter true or false");
    return text.toLowerCase();
  }
  if (schema.format === "date") return dateLiteral(text);
  if (schema.format === "date-time") return `TIMESTAMP(${stringLiteral(text)})`;
  return stringLiteral(value);
}

/** One condition, e.g. `name` `contains` `Hall` -> CASEI(name) LIKE CASEI('%Hall%'). */
export function condition(name, operator, value, schema = {}) {
  const field = property(name);
  if (operator === "contains") {
    // LIKE's own wildcards (and its escape character) in the text are matched as they are.
    const text = String(value).replace(/[\\%_]/g, (c) => `\\${c}`);
    return `CASEI(${field}) LIKE CASEI(${stringLiteral(`%${text}%`)})`;
  }
  if (!OPERATORS.some((op) => op.value === operator)) throw new Error(`unknown operator ${operator}`);
  return `${field} ${operator} ${literal(value, schema)}`;
}

export function and(conditions) {
  const parts = conditions.filter(Boolean);
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : parts.map((part) => `(${part})`).join(" AND ");
}

export function inList(name, values) {
  return `${property(name)} IN (${values.map(stringLiteral).join(", ")})`;
}
