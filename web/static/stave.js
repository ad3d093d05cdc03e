// The public pages' one script: the player and the in-browser signature check.
// Everything here enhances a page that already works without JavaScript.
import { enhancePlaylist } from "./player.js";
import { checkPage } from "./signatures.js";

enhancePlaylist(document);
checkPage(document);
