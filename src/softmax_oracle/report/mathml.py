"""LaTeX to MathML for the formulas of the specification, so that the HTML report renders them
offline (browsers render MathML natively; nothing is fetched).

Why a converter of our own rather than the ``latex2mathml`` package: the claims use a small,
fixed subset of LaTeX (fractions, scripts, big operators, accents, fences, a few fonts and
symbols), which a recursive-descent parser covers in a couple of hundred lines; the report then
needs no extra dependency, and every claim's formula is tested to convert. Anything outside the
subset raises ``MathMLError`` and the caller shows the plain-text statement instead.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["MathMLError", "to_mathml"]


class MathMLError(ValueError):
    """The LaTeX uses something outside the supported subset (or is malformed)."""


_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ",
    "phi": "ϕ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π",
    "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}

#: Upright identifiers (symbols that are not variables).
_UPRIGHT = {"ell": "ℓ", "partial": "∂", "nabla": "∇", "infty": "∞", "top": "⊤", "emptyset": "∅"}

#: Relations and binary operators.
_OPERATORS = {
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "in": "∈",
    "notin": "∉", "approx": "≈", "sim": "∼", "equiv": "≡", "Rightarrow": "⇒", "Leftarrow": "⇐",
    "Leftrightarrow": "⇔", "implies": "⇒", "to": "→", "rightarrow": "→", "mapsto": "↦",
    "odot": "⊙", "otimes": "⊗", "oplus": "⊕", "cdot": "⋅", "times": "×", "pm": "±", "mp": "∓",
    "mid": "∣", "setminus": "∖", "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩",
    "dots": "…", "ldots": "…", "cdots": "⋯", "colon": ":", "circ": "∘", "ll": "≪", "gg": "≫",
    "exists": "∃", "forall": "∀",
}

_FENCES = {"langle": "⟨", "rangle": "⟩", "lvert": "|", "rvert": "|", "lVert": "‖",
           "rVert": "‖", "vert": "|", "Vert": "‖", "lbrace": "{", "rbrace": "}"}

#: Function names set upright, followed by function application.
_FUNCTIONS = ("ln", "log", "exp", "sin", "cos", "tan", "tanh", "det", "arg", "sgn")

#: Operators whose limits go under them (munder), set as subscripts inline.
_LIMIT_OPERATORS = {"max": "max", "min": "min", "lim": "lim", "sup": "sup", "inf": "inf",
                    "argmax": "arg max", "argmin": "arg min"}

_BIG_OPERATORS = {"sum": "∑", "prod": "∏", "int": "∫"}

_SPACES = {",": "0.1667em", ":": "0.2222em", ";": "0.2778em", " ": "0.25em", "quad": "1em",
           "qquad": "2em", "!": "-0.1667em"}

_ACCENTS = {"hat": ("^", False), "widehat": ("^", True), "tilde": ("~", False),
            "widetilde": ("~", True), "bar": ("¯", False), "overline": ("¯", True),
            "vec": ("→", False), "dot": ("˙", False)}

_ESCAPED = {"|": "‖", "{": "{", "}": "}", "%": "%", "#": "#", "&": "&", "_": "_", "$": "$"}

_BOLD_UPPER, _BOLD_LOWER, _BOLD_DIGIT = 0x1D400, 0x1D41A, 0x1D7CE
_BB_EXCEPTIONS = {"C": "ℂ", "H": "ℍ", "N": "ℕ", "P": "ℙ", "Q": "ℚ", "R": "ℝ", "Z": "ℤ"}

_TOKEN = re.compile(r"\\([A-Za-z]+)|\\(.)|(\d+(?:\.\d+)?)|(\s+)|(.)", re.DOTALL)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "cmd", "num", "char"
    text: str


def _tokens(latex: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN.finditer(latex):
        word, sym, num, space, char = m.groups()
        if word is not None:
            out.append(_Tok("cmd", word))
        elif sym is not None:
            out.append(_Tok("cmd", sym))
        elif num is not None:
            out.append(_Tok("num", num))
        elif space is not None:
            out.append(_Tok("space", space))
        else:
            out.append(_Tok("char", char))
    return out


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _mi(text: str, upright: bool = False) -> str:
    variant = ' mathvariant="normal"' if upright and len(text) == 1 else ""
    return f"<mi{variant}>{_esc(text)}</mi>"


def _mo(text: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f"<mo{extra}>{_esc(text)}</mo>"


def _row(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "<mrow>" + "".join(items) + "</mrow>"


def _styled(text: str, font: str) -> str:
    """Map letters and digits to the Unicode mathematical alphanumerics (MathML Core renders
    only ``mathvariant="normal"``; other fonts are written as characters)."""
    out = []
    for ch in text:
        if font == "bb" and ch in _BB_EXCEPTIONS:
            out.append(_BB_EXCEPTIONS[ch])
        elif font == "bb" and ch.isascii() and ch.isupper():
            out.append(chr(0x1D538 + ord(ch) - ord("A")))
        elif font == "bb" and ch.isascii() and ch.isdigit():
            out.append(chr(0x1D7D8 + ord(ch) - ord("0")))
        elif font == "bf" and ch.isascii() and ch.isupper():
            out.append(chr(_BOLD_UPPER + ord(ch) - ord("A")))
        elif font == "bf" and ch.isascii() and ch.islower():
            out.append(chr(_BOLD_LOWER + ord(ch) - ord("a")))
        elif font == "bf" and ch.isascii() and ch.isdigit():
            out.append(chr(_BOLD_DIGIT + ord(ch) - ord("0")))
        elif ch.isspace():
            continue
        else:
            raise MathMLError(f"cannot set {ch!r} in the {font} font")
    return "".join(out)


def _attach(base: str, sub: str | None, sup: str | None, *, under: bool) -> str:
    if sub is None and sup is None:
        return base
    if sub is not None and sup is not None:
        tag = "munderover" if under else "msubsup"
        return f"<{tag}>{base}{sub}{sup}</{tag}>"
    if sub is not None:
        tag = "munder" if under else "msub"
        return f"<{tag}>{base}{sub}</{tag}>"
    tag = "mover" if under else "msup"
    return f"<{tag}>{base}{sup}</{tag}>"


class _Parser:
    def __init__(self, latex: str) -> None:
        self.toks = _tokens(latex)
        self.pos = 0

    # ---------------------------------------------------------------- token access
    def _peek(self, skip_space: bool = True) -> _Tok | None:
        while skip_space and self.pos < len(self.toks) and self.toks[self.pos].kind == "space":
            self.pos += 1
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _next(self) -> _Tok:
        tok = self._peek()
        if tok is None:
            raise MathMLError("unexpected end of formula")
        self.pos += 1
        return tok

    def _raw_group(self) -> str:
        """The source text of a braced argument, unparsed (for \\text and \\mathrm)."""
        tok = self._next()
        if tok.kind == "char" and tok.text != "{":
            return tok.text
        if tok.kind != "char":
            raise MathMLError(f"expected a braced argument, got \\{tok.text}")
        depth, parts = 1, list[str]()
        while self.pos < len(self.toks):
            t = self.toks[self.pos]
            self.pos += 1
            if t.kind == "char" and t.text == "{":
                depth += 1
            elif t.kind == "char" and t.text == "}":
                depth -= 1
                if depth == 0:
                    return "".join(parts)
            parts.append("\\" + t.text if t.kind == "cmd" else t.text)
        raise MathMLError("unbalanced braces")

    # ---------------------------------------------------------------- grammar
    def parse(self) -> str:
        items = self._sequence(stop=None)
        if self._peek() is not None:
            raise MathMLError(f"unexpected {self._peek()}")
        return _row(items) if items else "<mrow></mrow>"

    def _sequence(self, stop: str | None) -> list[str]:
        items: list[str] = []
        bars = 0  # |x| pairs: the first bar of a pair opens, the second closes
        while True:
            tok = self._peek()
            if tok is None:
                if stop is not None:
                    raise MathMLError(f"missing {stop!r}")
                return items
            if stop == "}" and tok.kind == "char" and tok.text == "}":
                self.pos += 1
                return items
            if stop == "right" and tok.kind == "cmd" and tok.text == "right":
                return items
            if tok.kind == "cmd" and tok.text == "textstyle":
                self.pos += 1
                rest = self._sequence(stop)
                items.append('<mstyle displaystyle="false">' + "".join(rest) + "</mstyle>")
                return items
            if tok.kind == "char" and tok.text == "|":
                bars += 1
                self.pos += 1
                form = "prefix" if bars % 2 else "postfix"
                items.append(self._scripts(_mo("|", fence="true", stretchy="false", form=form,
                                               lspace="0", rspace="0"), ""))
                continue
            items.append(self._scripted())

    def _scripted(self) -> str:
        base, kind = self._atom()
        return self._scripts(base, kind)

    def _scripts(self, base: str, kind: str) -> str:
        """Attach any sub- and superscripts (and primes) that follow an atom."""
        sub = sup = None
        while True:
            tok = self._peek(skip_space=True)
            if tok is None or tok.kind != "char" or tok.text not in "^_'":
                break
            self.pos += 1
            if tok.text == "'":
                sup = (sup or "") + _mo("′")
            elif tok.text == "^":
                if sup is not None:
                    raise MathMLError("double superscript")
                sup = self._argument()
            else:
                if sub is not None:
                    raise MathMLError("double subscript")
                sub = self._argument()
        out = _attach(base, sub, sup, under=kind == "limits")
        if kind == "function":  # function application; a thin space unless a bracket follows
            nxt = self._peek()
            paren = nxt is not None and nxt.kind == "char" and nxt.text in "(["
            out += _mo("\u2061", **({} if paren else {"rspace": "0.1667em"}))
        return out

    def _argument(self) -> str:
        """A script or command argument: a braced group or a single atom."""
        tok = self._peek()
        if tok is not None and tok.kind == "char" and tok.text == "{":
            self.pos += 1
            return _row(self._sequence("}") or ["<mrow></mrow>"])
        if tok is not None and tok.kind == "num" and len(tok.text) > 1 and "." not in tok.text:
            # x^23 means x^{2}3 in TeX
            self.toks[self.pos] = _Tok("num", tok.text[1:])
            return f"<mn>{tok.text[0]}</mn>"
        return self._atom()[0]

    def _atom(self) -> tuple[str, str]:
        """One atom and its kind ("" or "limits", for operators with limits under them)."""
        tok = self._next()
        if tok.kind == "num":
            return f"<mn>{tok.text}</mn>", ""
        if tok.kind == "char":
            return self._char(tok.text), ""
        return self._command(tok.text)

    def _char(self, ch: str) -> str:
        if ch == "{":
            return _row(self._sequence("}") or ["<mrow></mrow>"])
        if ch == "}":
            raise MathMLError("unbalanced '}'")
        if ch.isalpha():
            return _mi(ch)
        if ch == "-":
            return _mo("−")
        if ch == "*":
            return _mo("∗")
        if ch in "([":
            return _mo(ch, stretchy="false")
        if ch in ")]":
            return _mo(ch, stretchy="false")
        if ch in "+=<>/,.:;!?":
            return _mo(ch)
        if ch in "&$%#~\\^_":
            raise MathMLError(f"unsupported character {ch!r}")
        return _mo(ch)

    def _command(self, name: str) -> tuple[str, str]:
        if name in _GREEK:
            return _mi(_GREEK[name], upright=name[0].isupper()), ""
        if name in _UPRIGHT:
            return _mi(_UPRIGHT[name], upright=True), ""
        if name in _OPERATORS:
            return _mo(_OPERATORS[name]), ""
        if name in _FENCES:
            return _mo(_FENCES[name], stretchy="false"), ""
        if name in _ESCAPED:
            return _mo(_ESCAPED[name], stretchy="false"), ""
        if name in _SPACES:
            return f'<mspace width="{_SPACES[name]}"></mspace>', ""
        if name in _FUNCTIONS:
            return _mi(name), "function"
        if name in _LIMIT_OPERATORS:
            return _mo(_LIMIT_OPERATORS[name], movablelimits="true", form="prefix"), "limits"
        if name in _BIG_OPERATORS:
            return _mo(_BIG_OPERATORS[name], largeop="true", movablelimits="true"), "limits"
        if name in _ACCENTS:
            mark, stretchy = _ACCENTS[name]
            body = self._argument()
            attr = ' stretchy="true"' if stretchy else ' stretchy="false"'
            return f'<mover accent="true">{body}<mo{attr}>{_esc(mark)}</mo></mover>', ""
        if name == "frac":
            num, den = self._argument(), self._argument()
            return f"<mfrac>{num}{den}</mfrac>", ""
        if name == "sqrt":
            return f"<msqrt>{self._argument()}</msqrt>", ""
        if name in ("mathrm", "operatorname"):
            text = self._raw_group()
            if re.fullmatch(r"[A-Za-z0-9]+", text):
                return _mi(text, upright=True), ""
            return _row(_Parser(text).parse_items()), ""
        if name == "text":
            return f"<mtext>{_esc(self._raw_group())}</mtext>", ""
        if name in ("mathbf", "boldsymbol"):
            return _mi(_styled(self._raw_group(), "bf"), upright=True), ""
        if name == "mathbb":
            return _mi(_styled(self._raw_group(), "bb"), upright=True), ""
        if name == "left":
            return self._fenced(), ""
        if name in ("displaystyle",):
            return "", ""
        raise MathMLError(f"unsupported command \\{name}")

    def _delimiter(self) -> str:
        tok = self._next()
        if tok.kind == "char" and tok.text in "()[]|.":
            return "" if tok.text == "." else tok.text
        if tok.kind == "cmd" and tok.text in _FENCES:
            return _FENCES[tok.text]
        if tok.kind == "cmd" and tok.text in ("|", "{", "}"):
            return _ESCAPED[tok.text]
        raise MathMLError(f"unsupported delimiter {tok.text!r}")

    def _fenced(self) -> str:
        opening = self._delimiter()
        body = self._sequence("right")
        self.pos += 1  # \right
        closing = self._delimiter()
        parts = []
        if opening:
            parts.append(_mo(opening, fence="true", stretchy="true", form="prefix"))
        parts.extend(body)
        if closing:
            parts.append(_mo(closing, fence="true", stretchy="true", form="postfix"))
        return "<mrow>" + "".join(parts) + "</mrow>"

    def parse_items(self) -> list[str]:
        items = self._sequence(stop=None)
        return items or ["<mrow></mrow>"]


def to_mathml(latex: str, *, display: bool = False) -> str:
    """The MathML for a LaTeX formula of the supported subset; raises ``MathMLError``."""
    body = _Parser(latex).parse()
    mode = "block" if display else "inline"
    return (f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}">'
            f"<semantics>{body}<annotation encoding=\"application/x-tex\">{_esc(latex)}"
            f"</annotation></semantics></math>")
