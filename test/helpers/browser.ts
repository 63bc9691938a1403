/** @file The browser launcher the page tests share with `bench page` (bench/browser.ts). */
export { chromiumMissing, launchChromium, type LaunchedBrowser } from "../../bench/browser.ts";
