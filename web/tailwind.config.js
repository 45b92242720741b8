/** @type {import('tailwindcss').Config} */
export default {
  content: ["./index.html", "./src/**/*.{ts,tsx}"],
  // Ant Design brings its own reset: Tailwind adds utilities only.
  corePlugins: { preflight: false },
  darkMode: "class",
};
