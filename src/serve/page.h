// GET /: the upload page, one self-contained HTML file (CSS and JavaScript inline, no CDN)
// compiled into the binary from src/serve/web/ by cmake/embed_web_page.cmake.
//
//   std::string html = render_page("vi", config_json);
#pragma once

#include <string>
#include <string_view>

namespace dermal::serve {

extern const std::string_view kWebPage;  // with {{LANG}} and {{CONFIG}} placeholders

// "vi" when the Accept-Language header prefers Vietnamese over English, else "en".
std::string choose_language(const std::string& accept_language);
// The page for a language, with the page's settings (JSON) filled in.
std::string render_page(const std::string& lang, const std::string& config_json);

}  // namespace dermal::serve
