"""The chat page's CSS and its one script (clicking a marker shows the passage and highlights the cited
span in the article), as `HEAD` for the page's head and `ARTICLE_ON_LOAD` for the article panel; they
travel inside the Blocks wherever it is mounted. The HTML they style is `render`'s.
"""

CSS = """
#main-row { align-items: flex-start; gap: 16px; }
#main-row > * { min-width: 0; }
.reply p { margin: 0 0 .4em; }
.reply .meta { font-size: .78em; color: #6b7280; margin: .4em 0 0; }
.reply.draft p { color: #6b7280; }
.reply.draft blockquote.evidence { margin: 0 0 .4em; padding-left: .6em; border-left: 3px solid #93c5fd; }
.reply .caret { animation: blink 1s steps(2) infinite; }
@keyframes blink { 50% { opacity: 0; } }
a.cite { display: inline-block; padding: 0 .3em; margin: 0 .1em; border-radius: 4px; font-size: .85em;
  font-weight: 600; background: #dbeafe; color: #1d4ed8 !important; text-decoration: none !important;
  cursor: pointer; line-height: 1.4; }
a.cite:hover, a.cite:focus { background: #1d4ed8; color: #fff !important; }
.reply.refusal { background: #f3f4f6; border: 1px dashed #9ca3af; border-radius: 8px; padding: .6em .8em;
  color: #374151; }
.reply.refusal .refusal-text::before { content: "∅ "; color: #9ca3af; }
.reply.refusal .related-list { font-size: .85em; margin-top: .4em; }
.reply.refusal ul { margin: .2em 0 0 1.1em; padding: 0; }
.reply.correction { background: #fffbeb; border: 1px solid #fcd34d; border-radius: 8px; padding: .6em .8em; }
.reply.error { background: #fef2f2; border: 1px solid #fecaca; border-radius: 8px; padding: .6em .8em;
  color: #991b1b; }
#sources-panel, #article-panel { font-size: 14px; line-height: 1.6; overflow-wrap: anywhere; }
#sources-panel details.turn { margin-bottom: .6em; }
#sources-panel summary { cursor: pointer; font-weight: 600; color: #374151; }
#sources-panel .source { border: 1px solid #e5e7eb; border-left: 4px solid #93c5fd; border-radius: 6px;
  padding: .5em .7em; margin: .5em 0; scroll-margin: 12px; }
#sources-panel .source.related { border-left-color: #d1d5db; background: #f9fafb; }
#sources-panel .source.active { border-left-color: #1d4ed8; box-shadow: 0 0 0 2px #bfdbfe; }
#sources-panel .where { color: #4b5563; font-size: .9em; }
#sources-panel blockquote { margin: .3em 0; padding: 0; border: 0; color: #1f2937; white-space: pre-line; }
#sources-panel mark, #article-panel mark.quote { background: #fde68a; color: inherit; padding: 0 1px; }
#article-panel mark.span { background: #e0f2fe; color: inherit; }
#sources-panel .related-head { color: #6b7280; font-size: .9em; margin: .3em 0 0; }
#sources-panel a.read { font-size: .85em; }
.sources-empty, .article-empty { color: #6b7280; font-size: .9em; }
#article-panel .article-scroll { position: relative; max-height: 420px; overflow-y: auto; border: 1px solid #e5e7eb;
  border-radius: 6px; padding: .3em .8em; }
#article-panel h3 { font-size: 1.05em; margin: .4em 0; }
#article-panel h4 { font-size: .95em; margin: .8em 0 .2em; color: #374151; }
#article-panel .byline { color: #6b7280; font-size: .85em; }
#article-panel p { margin: .3em 0; }
@media (max-width: 700px) {
  #main-row { flex-direction: column !important; flex-wrap: nowrap !important; }
  #main-row > * { width: 100% !important; max-width: 100% !important; flex: 1 1 auto !important; }
  #article-panel .article-scroll { max-height: 320px; }
  #chat { height: 400px !important; }
  #examples > .gallery { flex-wrap: nowrap !important; overflow-x: auto; }
  #examples .gallery-item { flex: 0 0 auto; }
  #examples .gallery-item .gallery { white-space: nowrap !important; }
}
"""

# Delegated on `document`, so it keeps working as Gradio re-renders the chat and the panels.
SCRIPT = """
(function () {
  if (window.__assistantWeb) return;
  window.__assistantWeb = true;
  function mark(p, s, e, qs, qe) {
    var ps = +p.dataset.s, pe = +p.dataset.e, text = p.textContent;
    if (e <= ps || s >= pe) { if (p.querySelector('mark')) p.textContent = text; return; }
    var cuts = [ps, pe, s, e, qs, qe].filter(function (x) { return x >= ps && x <= pe; });
    cuts = cuts.filter(function (x, i) { return cuts.indexOf(x) === i; }).sort(function (a, b) { return a - b; });
    p.textContent = '';
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1], piece = text.slice(a - ps, b - ps);
      if (!piece) continue;
      if (a >= s && b <= e) {
        var m = document.createElement('mark');
        m.className = (qs >= 0 && a >= qs && b <= qe) ? 'quote' : 'span';
        m.textContent = piece;
        p.appendChild(m);
      } else { p.appendChild(document.createTextNode(piece)); }
    }
  }
  function showInArticle(card) {
    var d = card.dataset, shown = null;
    document.querySelectorAll('#article-panel section.article').forEach(function (sec) {
      var on = sec.dataset.source === d.source;
      sec.hidden = !on;
      if (on) shown = sec;
    });
    if (!shown) return;
    shown.querySelectorAll('p[data-s]').forEach(function (p) { mark(p, +d.start, +d.end, +d.qs, +d.qe); });
    var first = shown.querySelector('mark'), box = shown.parentElement;
    if (first && box) box.scrollTop = Math.max(0, first.offsetTop - 24);
  }
  document.addEventListener('click', function (ev) {
    var link = ev.target.closest && ev.target.closest('a.cite, a.read, a.rel');
    if (!link) return;
    var card = document.getElementById((link.getAttribute('href') || '').replace(/^#/, ''));
    if (!card) return;
    ev.preventDefault();
    ev.stopPropagation();
    var turn = card.closest('details');
    if (turn) turn.open = true;
    document.querySelectorAll('#sources-panel .source.active').forEach(function (x) { x.classList.remove('active'); });
    card.classList.add('active');
    showInArticle(card);
    (link.classList.contains('read') ? document.getElementById('article-panel') : card)
      .scrollIntoView({block: 'nearest'});
  }, true);
})();
"""

HEAD = f"<style>{CSS}</style><script>{SCRIPT}</script>"
# For the article panel (`gr.HTML(js_on_load=...)`): each new answer scrolls its highlighted span into view.
ARTICLE_ON_LOAD = (
    "watch('value', function () {"
    " var m = element.querySelector('mark'), box = element.querySelector('.article-scroll');"
    " if (m && box) box.scrollTop = Math.max(0, m.offsetTop - 24); });"
)
