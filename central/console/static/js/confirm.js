// Forms that change the fleet (a lockdown, a key, an emergency release) ask before they post:
// the question is the form's data-confirm, already in the page's language.
document.addEventListener("submit", (submit) => {
  const question = submit.target.dataset?.confirm;
  if (question && !window.confirm(question)) submit.preventDefault();
});
