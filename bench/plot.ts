/**
 * Charts for benchmark reports: Vega-Lite specs compiled to Vega and rendered to SVG in Node
 * (`View.toSVG()` needs no canvas), plus a writer for a Markdown report that links them.
 *
 * Output is deterministic for the same data: Vega estimates text widths instead of measuring
 * them with a font, and every chart uses a generic font family, so no installed font changes
 * the layout. Charts are static (no tooltips or interaction) and small (one SVG, no scripts).
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export type Row = Record<string, string | number | null>;

export interface Scale {
  type?: "linear" | "log" | "sqrt";
  /** Whether the axis must include 0; Vega-Lite's default is true for linear scales. */
  zero?: boolean;
  domain?: [number, number];
}

export interface Axis {
  field: string;
  title: string;
  scale?: Scale;
}

export interface LineChartOptions {
  title: string;
  x: Axis;
  y: Axis;
  /** Field whose values become one coloured line each. */
  series?: string;
  data: Row[];
}

export interface RecallQpsPoint {
  engine: string;
  recall: number;
  qps: number;
  /** The search-time expansion (expansion_search / ef) of this point, printed beside it. */
  ef: number;
}

export interface BarChartOptions {
  title: string;
  /** The categories along x (one bar, or one group of bars, each). */
  category: Axis;
  value: Axis;
  /** Field that splits every category into side-by-side coloured bars. */
  group?: string;
  /** d3-format of the value printed above each bar; default 3 significant digits. */
  format?: string;
  data: Row[];
}

export interface ChartFile {
  /** File name inside the report's plots/ folder, e.g. "peers-recall-qps.svg". */
  file: string;
  /** Alt text and caption. */
  title: string;
  svg: string;
}

export interface ReportSection {
  heading: string;
  markdown: string;
  charts?: ChartFile[];
}

export interface Report {
  title: string;
  sections: ReportSection[];
}

const chartWidthPx = 480;
const chartHeightPx = 300;
const fontFamily = "sans-serif";
const plotsDirName = "plots";
/** Three significant digits with thousands separators and no trailing zeros: 0.312, 5,430. */
const barValueFormatDefault = ",.3~r";

/** Shared look: white background, generic font, no interactive features. */
const baseConfig = {
  font: fontFamily,
  background: "white",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: "start" as const },
};

function scaleOf(scale: Scale | undefined): Scale {
  return { zero: false, ...scale };
}

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function frame(title: string, data: Row[]) {
  return { title, width: chartWidthPx, height: chartHeightPx, data: { values: data }, config: baseConfig };
}

/** One line per series value (or a single line), with a point on every row. */
export function lineChart(options: LineChartOptions): Promise<string> {
  const { x, y, series } = options;
  return renderSvg({
    ...frame(options.title, options.data),
    mark: { type: "line", point: true },
    encoding: {
      x: { field: x.field, type: "quantitative", title: x.title, scale: scaleOf(x.scale) },
      y: { field: y.field, type: "quantitative", title: y.title, scale: scaleOf(y.scale) },
      ...(series === undefined ? {} : { color: { field: series, type: "nominal", title: series } }),
    },
  });
}

/**
 * The ann-benchmarks view: recall@k on x, queries per second on a log y axis, one line per
 * engine through its ef sweep, every point labelled with its ef. Up and to the right is better.
 */
export function recallQps(options: { title: string; data: RecallQpsPoint[]; recallTitle?: string; qpsTitle?: string }): Promise<string> {
  const x = { field: "recall", type: "quantitative" as const, title: options.recallTitle ?? "recall@10", scale: { zero: false } };
  const y = { field: "qps", type: "quantitative" as const, title: options.qpsTitle ?? "queries per second (log)", scale: { type: "log" as const } };
  // Engines keep the order of `data` in the legend and palette, as in the other charts.
  const engines = [...new Set(options.data.map((point) => point.engine))];
  const color = { field: "engine", type: "nominal" as const, title: "engine", scale: { domain: engines } };
  return renderSvg({
    ...frame(options.title, options.data as unknown as Row[]),
    encoding: { x, y, color },
    layer: [
      { mark: { type: "line", point: true }, encoding: { order: { field: "ef", type: "quantitative" } } },
      { mark: { type: "text", align: "left", dx: 5, dy: -6, fontSize: 9 }, encoding: { text: { field: "ef", type: "quantitative" } } },
    ],
  });
}

/**
 * Vertical bars, grouped side by side when `group` is given, each labelled with its value.
 * Categories keep the order of `data` (the caller's order, e.g. engines as run).
 */
export function barChart(options: BarChartOptions): Promise<string> {
  const { category, value, group } = options;
  const groupEncoding = group === undefined ? {} : { xOffset: { field: group, type: "nominal" as const }, color: { field: group, type: "nominal" as const, title: group } };
  return renderSvg({
    ...frame(options.title, options.data),
    encoding: {
      x: { field: category.field, type: "nominal", title: category.title, sort: null, axis: { labelAngle: 0, labelLimit: 0 } },
      y: { field: value.field, type: "quantitative", title: value.title, scale: value.scale ?? {} },
      ...groupEncoding,
    },
    layer: [
      { mark: { type: "bar" } },
      { mark: { type: "text", dy: -4, fontSize: 9, baseline: "bottom" }, encoding: { text: { field: value.field, type: "quantitative", format: options.format ?? barValueFormatDefault } } },
    ],
  });
}

/**
 * Writes `<dir>/<name>.md` and every chart as `<dir>/plots/<file>`, linked from the Markdown
 * by relative paths so the report reads the same in a checkout and on a forge. Returns the
 * written paths.
 */
export async function writeReport(dir: string, name: string, report: Report): Promise<string[]> {
  const plotsDir = path.join(dir, plotsDirName);
  await mkdir(plotsDir, { recursive: true });
  const written: string[] = [];
  const lines = [`# ${report.title}`, ""];
  for (const section of report.sections) {
    lines.push(`## ${section.heading}`, "", section.markdown.trimEnd(), "");
    for (const chart of section.charts ?? []) {
      const file = path.join(plotsDir, chart.file);
      await writeFile(file, chart.svg);
      written.push(file);
      lines.push(`![${chart.title}](${plotsDirName}/${chart.file})`, "");
    }
  }
  const markdown = path.join(dir, `${name}.md`);
  await writeFile(markdown, lines.join("\n"));
  return [markdown, ...written];
}
