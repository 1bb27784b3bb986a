#include "vision/colormap.h"

#include <cmath>
#include <cstddef>

#include "engine/error.h"

namespace dermal::vision {
namespace {

using Table = std::array<std::array<float, 3>, 256>;

// matplotlib's _jet_data: (x, y) knots per channel, linear in between.
struct Knot {
  double x, y;
};
constexpr Knot kJetRed[] = {{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}};
constexpr Knot kJetGreen[] = {{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}};
constexpr Knot kJetBlue[] = {{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}};

template <size_t N>
double piecewise_linear(const Knot (&k)[N], double x) {
  for (size_t i = 1; i < N; ++i)
    if (x <= k[i].x) return k[i - 1].y + (x - k[i - 1].x) / (k[i].x - k[i - 1].x) * (k[i].y - k[i - 1].y);
  return k[N - 1].y;
}

// Chebyshev coefficients in u = 2t - 1 (see colormap.h for how they were obtained).
constexpr double kViridis[3][15] = {
    {0.408685303, 0.29831589, 0.254973645, 0.0802211112, -0.0331615251, -0.0196831763, -0.00178314534,
     0.0065440167, 0.00208256026, -0.003684529, -0.00144519426, 0.00173786127, 0.000889558609, -0.000761377733,
     -0.000743431746},
    {0.518721142, 0.454668502, -0.0573709758, -0.0048518759, -0.00846997684, 0.000751235251, 0.00214133304,
     0.000842709253, -0.000325864931, 0.00011329123, 0.000181636653, -0.000294459358, 0.000249351145,
     -0.000196634733, 0.000166170398},
    {0.375889699, -0.146720652, -0.170658126, 0.0211424205, 0.0148292236, 0.0288197857, 0.0146767892,
     0.00487351003, 0.00413135579, 0.00119996665, -0.000715381655, -0.000934545222, -0.00107654441,
     -0.000755849306, -0.000524751284},
};
constexpr double kTurbo[3][23] = {
    {0.505157507, 0.3095474, -0.120505265, -0.232461634, -0.0469254882, 0.0967670096, -0.0163620117,
     -0.0354656312, 0.0239032677, 0.00274059479, -0.0148814124, 0.00892528558, 0.00469318908, -0.0079613414,
     0.000289946271, 0.00366733082, -0.000738116593, -0.00134883238, -4.33909056e-05, 0.000853103865,
     0.000200197556, -0.000905547212, 3.85231258e-05},
    {0.437021767, -0.096937423, -0.461476145, 0.0677600922, 0.0809202577, 0.00385534167, -0.0117751603,
     -0.0032901903, -0.00311539307, 0.000115522237, 0.00221939311, 0.00104397196, 0.00137968128,
     -0.000556012514, -0.00257244257, -0.000203462703, 0.00150146398, 0.000462013466, -0.00016087834,
     -0.00027994088, -0.0002541282, 0.000119935538, 0.00022820865},
    {0.354208393, -0.359218906, -0.120753459, 0.225698449, -0.146071123, 0.0414147731, 0.0462475595,
     -0.0231067696, -0.0181891375, 0.00119854631, 0.0106452913, 0.00672370576, -0.00841045549, -0.00441803284,
     0.00593905516, 9.46902979e-05, -0.00285218699, 0.00160090768, 0.000437431623, -0.000960948298,
     0.000403425251, 0.000270758601, -0.000596583641},
};

// Clenshaw's recurrence for sum c[k] T_k(u).
template <size_t N>
double chebyshev(const double (&c)[N], double t) {
  const double u = 2.0 * t - 1.0;
  double b1 = 0.0, b2 = 0.0;
  for (size_t k = N - 1; k >= 1; --k) {
    double b0 = 2.0 * u * b1 - b2 + c[k];
    b2 = b1;
    b1 = b0;
  }
  return u * b1 - b2 + c[0];
}

float clamp01(double v) { return static_cast<float>(v < 0 ? 0 : v > 1 ? 1 : v); }

Table build(Colormap c) {
  Table t{};
  for (int i = 0; i < 256; ++i) {
    const double x = i / 255.0;
    switch (c) {
      case Colormap::jet:
        t[i] = {clamp01(piecewise_linear(kJetRed, x)), clamp01(piecewise_linear(kJetGreen, x)),
                clamp01(piecewise_linear(kJetBlue, x))};
        break;
      case Colormap::viridis:
        t[i] = {clamp01(chebyshev(kViridis[0], x)), clamp01(chebyshev(kViridis[1], x)),
                clamp01(chebyshev(kViridis[2], x))};
        break;
      case Colormap::turbo:
        t[i] = {clamp01(chebyshev(kTurbo[0], x)), clamp01(chebyshev(kTurbo[1], x)), clamp01(chebyshev(kTurbo[2], x))};
        break;
    }
  }
  return t;
}

const Table& table(Colormap c) {
  static const Table jet = build(Colormap::jet), turbo = build(Colormap::turbo), viridis = build(Colormap::viridis);
  switch (c) {
    case Colormap::jet: return jet;
    case Colormap::turbo: return turbo;
    case Colormap::viridis: return viridis;
  }
  return jet;
}

int index_of(double v) {
  if (!(v > 0)) return 0;  // also NaN
  if (v >= 1) return 255;
  return static_cast<int>(v * 256);
}

}  // namespace

const char* colormap_name(Colormap c) {
  switch (c) {
    case Colormap::jet: return "jet";
    case Colormap::turbo: return "turbo";
    case Colormap::viridis: return "viridis";
  }
  return "?";
}

Colormap parse_colormap(const std::string& name) {
  for (Colormap c : {Colormap::jet, Colormap::turbo, Colormap::viridis})
    if (name == colormap_name(c)) return c;
  throw Error(ErrorKind::invalid_input, "unknown colormap '" + name + "' (jet, turbo or viridis)");
}

std::array<float, 3> colormap_rgb(Colormap c, double v) { return table(c)[index_of(v)]; }

Image colorize(const FloatMap& m01, Colormap c) {
  std::array<std::array<uint8_t, 3>, 256> bytes;
  const Table& t = table(c);
  for (int i = 0; i < 256; ++i)
    for (int k = 0; k < 3; ++k) bytes[i][k] = static_cast<uint8_t>(std::lround(t[i][k] * 255.0f));
  Image out = Image::blank(m01.width, m01.height);
  for (size_t i = 0; i < m01.values.size(); ++i) {
    const auto& b = bytes[index_of(m01.values[i])];
    out.rgb[i * 3] = b[0];
    out.rgb[i * 3 + 1] = b[1];
    out.rgb[i * 3 + 2] = b[2];
  }
  return out;
}

}  // namespace dermal::vision
