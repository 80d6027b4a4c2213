/* «Sélection des factures pour le règlement»: while the resident ticks invoices, highlight the chosen rows
   and keep «Nombre de factures» and «Montant réglé» up to date (an aria-live region reads them out).
   The page works without this script: «Mettre à jour le total» asks the server for the same totals.
   The amounts added here are informative only; the payment's amounts come from the invoices service. */
(function () {
  "use strict";

  var form = document.getElementById("selection-factures");
  var count = document.getElementById("nombre-factures");
  var total = document.getElementById("montant-regle");
  var warning = document.getElementById("avertissement-regies");
  if (!form || !count || !total || !warning) {
    return;
  }

  // The server's format (shared.contracts.values.format_euros): 1 234,50 € with a narrow no-break space
  // between thousands and a no-break space before the euro sign.
  function euros(cents) {
    var whole = Math.floor(cents / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
    var rest = cents % 100;
    return whole + "," + (rest < 10 ? "0" : "") + rest + "\u00a0\u20ac";
  }

  function update() {
    var boxes = form.querySelectorAll('input[type="checkbox"][name="facture"]');
    var chosen = 0;
    var cents = 0;
    var regies = {};
    for (var i = 0; i < boxes.length; i++) {
      var box = boxes[i];
      var row = box.closest("tr");
      var picked = box.checked && !box.disabled;
      if (row) {
        row.classList.toggle("selectionnee", picked);
      }
      if (picked) {
        chosen += 1;
        cents += parseInt(box.getAttribute("data-montant"), 10) || 0;
        regies[box.getAttribute("data-regie")] = true;
      }
    }
    var text = String(chosen);
    var amount = euros(cents);
    // Only touch the live region when something changed, so that it is read once per change.
    if (count.textContent !== text) {
      count.textContent = text;
    }
    if (total.textContent !== amount) {
      total.textContent = amount;
    }
    warning.hidden = Object.keys(regies).length <= 1;
  }

  form.addEventListener("change", function (event) {
    if (event.target && event.target.name === "facture") {
      update();
    }
  });
  // A browser may restore ticked boxes when the resident comes back to the page: count what is shown.
  window.addEventListener("pageshow", update);
  update();
  // The totals are live: the button that asks the server for them is no longer needed.
  var refresh = form.querySelector(".selection__mise-a-jour");
  if (refresh) {
    refresh.hidden = true;
  }
})();
