// StripeMeter usage widget loader.
// <script src="https://meter.example.com/widget/embed.js" data-token="wt1...." data-theme="dark"></script>
// The token is minted by your server (POST /v1/widget/tokens); never put an API key in a page.
(function () {
  var script = document.currentScript;
  if (!script) return;
  var token = script.getAttribute("data-token") || "";
  var theme = script.getAttribute("data-theme") === "dark" ? "dark" : "light";
  var height = parseInt(script.getAttribute("data-height") || "420", 10) || 420;
  var origin = new URL(script.src, window.location.href).origin;
  var frame = document.createElement("iframe");
  frame.src = origin + "/widget/frame?token=" + encodeURIComponent(token) + "&theme=" + theme;
  frame.title = "Usage";
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.setAttribute("sandbox", "allow-same-origin");
  frame.style.width = "100%";
  frame.style.height = height + "px";
  frame.style.border = "0";
  frame.style.borderRadius = "12px";
  frame.style.colorScheme = theme;
  script.parentNode.insertBefore(frame, script.nextSibling);
})();
