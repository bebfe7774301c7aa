// Stand-in for the frontend's /scripts/app.js shim: records the registered extension.
export const app = {
  extensions: [],
  registerExtension(ext) {
    this.extensions.push(ext);
  },
};
