/** @file The browser launcher the page tests share with `bench page` (bench/browser.ts). */
export { chromiumMissing, launchChromium, openPage, type LaunchedBrowser, type PageResult } from "../../bench/browser.ts";
