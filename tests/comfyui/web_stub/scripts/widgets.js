// Stand-in for the frontend's /scripts/widgets.js shim: a STRING widget is a plain object.
export const ComfyWidgets = {
  STRING(node, name, spec) {
    const widget = { name, value: "", options: {}, inputEl: { style: {} }, spec };
    (node.widgets ||= []).push(widget);
    return { widget };
  },
};
